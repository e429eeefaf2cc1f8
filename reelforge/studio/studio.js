// reelforge studio: a form, a live queue and a gallery over this server's AI/ML API routes.
// Framework-free and unbundled on purpose: the package serves this file as it is, and
// nothing has to be built at install time. Every text from the server goes in through
// textContent, never innerHTML.

const API = "/v2/video/generations";
const KEY_STORAGE = "reelforge.apiKey";
const PAGE_SIZE = 12;
const STREAM_RETRIES = 5;
const POLL_INTERVAL_MS = 1000;
const TERMINAL = new Set(["completed", "error"]);
const FORM_FIELDS = [
  "model", "prompt", "negative_prompt", "aspect_ratio", "duration", "cfg_scale",
  "camera_control", "seed", "image_url",
];

const $ = (id) => document.getElementById(id);
const state = { keyRequired: false, models: new Map(), galleryAfter: null, viewing: null };

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// --- the API -------------------------------------------------------------------------

function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { message: text.slice(0, 200) };
  }
  if (!response.ok) {
    if (response.status === 401) askForKey(body && body.message);
    throw new ApiError(response.status, body);
  }
  return body;
}

// --- the API key -----------------------------------------------------------------------

function askForKey(message) {
  $("key-panel").hidden = false;
  $("key-toggle").hidden = false;
  $("error-api_key").textContent = message || "";
  $("api-key").focus();
}

function setUpKey() {
  $("api-key").value = localStorage.getItem(KEY_STORAGE) || "";
  $("key-toggle").addEventListener("click", () => {
    $("key-panel").hidden = !$("key-panel").hidden;
    if (!$("key-panel").hidden) $("api-key").focus();
  });
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) {
      $("error-api_key").textContent = "Enter an API key.";
      return;
    }
    localStorage.setItem(KEY_STORAGE, key);
    $("error-api_key").textContent = "";
    if (await loadEverything()) $("key-panel").hidden = true;
  });
  $("key-forget").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE);
    $("api-key").value = "";
    $("api-key").focus();
  });
}

// --- the form --------------------------------------------------------------------------

function option(value, text) {
  const element = document.createElement("option");
  element.value = String(value);
  element.textContent = text;
  return element;
}

function fillSelect(select, choices, labelOf = String) {
  const previous = select.value;
  select.replaceChildren(...choices.map(([value, text]) => option(value, labelOf(text))));
  if (choices.some(([value]) => String(value) === previous)) select.value = previous;
}

async function loadModels() {
  const answer = await api("/v1/models");
  state.models = new Map(answer.data.map((card) => [card.id, card]));
  const select = $("f-model");
  fillSelect(select, answer.data.map((card) => [card.id, card.id]));
  applyModel();
}

function taskWords(card) {
  const tasks = card.capabilities.tasks.map((t) => (t === "i2v" ? "image" : "text")).join(" or ");
  return `${tasks} to video`;
}

// Puts the chosen model's choices, limits and defaults into the form.
function applyModel() {
  const card = state.models.get($("f-model").value);
  if (!card) return;
  const limits = card.parameters;
  const caps = card.capabilities;
  const workers = `${card.workers} worker${card.workers === 1 ? "" : "s"} live`;
  $("hint-model").textContent = `${taskWords(card)}; ${card.engine} engine; ${workers}.`;
  $("f-prompt").maxLength = limits.prompt.max_length;
  $("f-prompt").required = limits.prompt.required;
  $("f-negative_prompt").maxLength = limits.negative_prompt.max_length;
  $("hint-negative_prompt").textContent = caps.negative_prompt
    ? ""
    : "This model ignores negative prompts.";
  fillSelect($("f-aspect_ratio"), limits.aspect_ratio.choices.map((r) => [r, r]));
  if (!$("f-aspect_ratio").dataset.touched) $("f-aspect_ratio").value = limits.aspect_ratio.default;
  fillSelect($("f-duration"), limits.duration.choices.map((d) => [d, `${d} s`]));
  if (!$("f-duration").dataset.touched && limits.duration.default != null) {
    $("f-duration").value = String(limits.duration.default);
  }
  const cfg = $("f-cfg_scale");
  cfg.min = limits.cfg_scale.minimum;
  cfg.max = limits.cfg_scale.maximum;
  if (cfg.value === "") cfg.value = limits.cfg_scale.default;
  $("hint-cfg_scale").textContent =
    `${limits.cfg_scale.minimum} to ${limits.cfg_scale.maximum}; ${limits.cfg_scale.default} is each engine's recommended guidance.`;
  $("f-seed").min = limits.seed.minimum;
  $("f-seed").max = limits.seed.maximum;
  fillSelect($("f-camera_control"), [["", "none"], ...limits.camera_control.choices.map((c) => [c, c])],
    (text) => text.replaceAll("_", " "));
  $("hint-camera_control").textContent = caps.camera_moves ? "" : "This model keeps the camera still.";
  const image = limits.image_url;
  $("image-fields").hidden = !image.accepted;
  $("hint-image_url").textContent = image.required
    ? "Required: this model animates an image."
    : "Optional: start from this image.";
}

function clearErrors() {
  for (const element of document.querySelectorAll("#create-form .field-error")) {
    element.textContent = "";
  }
  for (const element of document.querySelectorAll("#create-form [aria-invalid]")) {
    element.removeAttribute("aria-invalid");
  }
  $("form-error").textContent = "";
}

// Shows each error the API named next to its field; the rest above the button.
function showErrors(error) {
  const fieldErrors = (error.body && error.body.errors) || [];
  const unplaced = [];
  let first = null;
  for (const { field, message } of fieldErrors) {
    const name = FORM_FIELDS.find((f) => field === f || field.startsWith(`${f}.`));
    const slot = name && $(`error-${name}`);
    if (!slot) {
      unplaced.push(`${field}: ${message}`);
      continue;
    }
    slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    const input = $(`f-${name}`);
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (!fieldErrors.length) unplaced.push(error.message);
  $("form-error").textContent = unplaced.join(" ");
  if (first) first.focus();
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// The create body: only what the user set, so the API's defaults apply to the rest.
async function requestBody() {
  const value = (id) => $(id).value.trim();
  const body = { model: value("f-model") };
  for (const name of ["prompt", "negative_prompt", "aspect_ratio", "camera_control"]) {
    if (value(`f-${name}`)) body[name] = value(`f-${name}`);
  }
  body.duration = Number(value("f-duration"));
  // Numbers that do not parse go as typed, so that the API names the field.
  const number = (text) => (text === "" || Number.isNaN(Number(text)) ? text : Number(text));
  if (value("f-cfg_scale") !== "") body.cfg_scale = number(value("f-cfg_scale"));
  if (value("f-seed") !== "") body.seed = number(value("f-seed"));
  if (!$("image-fields").hidden) {
    const file = $("f-image_file").files[0];
    if (file) body.image_url = await readFile(file);
    else if (value("f-image_url")) body.image_url = value("f-image_url");
  }
  return body;
}

function setUpForm() {
  $("f-model").addEventListener("change", applyModel);
  for (const id of ["f-aspect_ratio", "f-duration"]) {
    $(id).addEventListener("change", () => { $(id).dataset.touched = "1"; });
  }
  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const button = $("generate");
    button.disabled = true;
    try {
      const generation = await api(API, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(await requestBody()),
      });
      track(generation);
    } catch (error) {
      if (error instanceof ApiError) showErrors(error);
      else $("form-error").textContent = String(error);
    } finally {
      button.disabled = false;
    }
  });
}

// --- the live queue --------------------------------------------------------------------

function duration(seconds) {
  if (seconds == null) return "";
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function statusLine(generation) {
  switch (generation.status) {
    case "queued": {
      const ahead = generation.queue_position ?? 0;
      return `Queued, ${ahead} ahead`;
    }
    case "generating":
      return generation.cancel_requested ? "Canceling…" : "Generating";
    case "completed":
      return "Completed";
    default:
      return generation.error ? `${generation.error.name}: ${generation.error.message}` : "Failed";
  }
}

function track(generation) {
  const item = document.createElement("li");
  item.className = "job";
  item.dataset.id = generation.id;
  const title = document.createElement("p");
  title.className = "job-title";
  title.textContent = generation.parameters.prompt || generation.model;
  const status = document.createElement("p");
  status.className = "job-status";
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.setAttribute("aria-label", "Progress");
  const figures = document.createElement("p");
  figures.className = "job-figures";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "secondary";
  cancel.textContent = "Cancel";
  // One button: Cancel while the generation runs, Dismiss once it has ended.
  cancel.addEventListener("click", async () => {
    if (TERMINAL.has(item.dataset.status)) {
      item.remove();
      $("queue-empty").hidden = $("queue-list").children.length > 0;
      return;
    }
    cancel.disabled = true;
    try {
      update(await api(`${API}/${generation.id}/cancel`, { method: "POST" }));
    } catch (error) {
      // 409: it ended meanwhile; its stream brings the last state.
      if (!(error instanceof ApiError && error.status === 409)) figures.textContent = error.message;
    }
  });
  item.append(title, status, bar, figures, cancel);
  $("queue-list").prepend(item);
  $("queue-empty").hidden = true;

  function update(current) {
    item.dataset.status = current.status;
    status.textContent = statusLine(current);
    bar.value = current.progress;
    const eta = current.eta_seconds && !TERMINAL.has(current.status)
      ? ` · ETA ${duration(current.eta_seconds)}` : "";
    const step = current.steps && current.status === "generating"
      ? `step ${current.step} of ${current.steps} · ` : "";
    figures.textContent = `${step}${current.progress} %${eta}`;
    if (TERMINAL.has(current.status)) {
      cancel.textContent = "Dismiss";
      cancel.disabled = false;
      addToGallery(current, true);
    }
  }
  update(generation);
  if (!TERMINAL.has(generation.status)) follow(generation.id, update);
}

// Server-Sent Events over fetch rather than EventSource, which cannot send the API key.
// The parser is the few lines of the format the server sends (event, data, id, comments).
async function follow(id, onGeneration) {
  let lastEventId = "";
  for (let attempt = 0; attempt <= STREAM_RETRIES; attempt += 1) {
    try {
      const headers = { Accept: "text/event-stream", ...authHeaders() };
      if (lastEventId) headers["Last-Event-ID"] = lastEventId;
      const response = await fetch(`${API}/${id}/events`, { headers });
      if (!response.ok || !response.body) break;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let event = { data: [] };
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        const lines = buffer.split(/\r?\n/);
        buffer = lines.pop();
        for (const line of lines) {
          if (line === "") {
            if (event.data.length) {
              const body = JSON.parse(event.data.join("\n"));
              if (event.event === "deleted") return;
              onGeneration(body);
              if (TERMINAL.has(body.status)) return;
            }
            event = { data: [] };
          } else if (!line.startsWith(":")) {
            const at = line.indexOf(":");
            const name = at < 0 ? line : line.slice(0, at);
            const text = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
            if (name === "data") event.data.push(text);
            else if (name === "event") event.event = text;
            else if (name === "id") lastEventId = text;
          }
        }
      }
    } catch {
      // The connection dropped: reconnect from the last event received.
    }
  }
  poll(id, onGeneration);
}

// Where the stream is unavailable: a poll a second until the generation ends.
async function poll(id, onGeneration) {
  for (;;) {
    let generation;
    try {
      generation = await api(`${API}/${id}`);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return;
    }
    if (generation) {
      onGeneration(generation);
      if (TERMINAL.has(generation.status)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
  }
}

// --- the gallery -----------------------------------------------------------------------

function card(generation) {
  const item = document.createElement("li");
  item.dataset.id = generation.id;
  item.dataset.status = generation.status;
  const open = document.createElement("button");
  open.type = "button";
  open.className = "card";
  const label = generation.parameters.prompt || generation.model;
  open.setAttribute("aria-label", `Open: ${label}`);
  if (generation.thumbnail) {
    const still = generation.thumbnail.url;
    const image = document.createElement("img");
    image.src = still;
    image.alt = "";
    image.loading = "lazy";
    // The GIF preview plays on hover (and keyboard focus), the still otherwise.
    const animate = () => { if (generation.preview) image.src = generation.preview.url; };
    const rest = () => { image.src = still; };
    open.addEventListener("mouseenter", animate);
    open.addEventListener("focus", animate);
    open.addEventListener("mouseleave", rest);
    open.addEventListener("blur", rest);
    open.append(image);
  } else {
    const placeholder = document.createElement("span");
    placeholder.className = "placeholder";
    placeholder.textContent = statusLine(generation);
    open.append(placeholder);
  }
  const caption = document.createElement("span");
  caption.className = "caption";
  caption.textContent = label;
  open.append(caption);
  open.addEventListener("click", () => view(generation));
  item.append(open);
  return item;
}

function addToGallery(generation, first) {
  const list = $("gallery-list");
  const existing = list.querySelector(`li[data-id="${CSS.escape(generation.id)}"]`);
  const item = card(generation);
  if (existing) existing.replaceWith(item);
  else if (first) list.prepend(item);
  else list.append(item);
  $("gallery-empty").hidden = list.children.length > 0;
}

async function loadGallery(reset) {
  if (reset) {
    $("gallery-list").replaceChildren();
    state.galleryAfter = null;
  }
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.galleryAfter) query.set("after", state.galleryAfter);
  const page = await api(`${API}?${query}`);
  for (const generation of page.data) {
    addToGallery(generation, false);
    // One still running from before this page was opened: follow it too.
    const inQueue = $("queue-list").querySelector(`li[data-id="${CSS.escape(generation.id)}"]`);
    if (!TERMINAL.has(generation.status) && !inQueue) track(generation);
  }
  state.galleryAfter = page.last_id;
  $("gallery-more").hidden = !page.has_more;
  $("gallery-empty").hidden = $("gallery-list").children.length > 0;
}

function view(generation) {
  state.viewing = generation;
  const dialog = $("viewer");
  const video = $("viewer-video");
  $("viewer-title").textContent = generation.parameters.prompt || generation.model;
  $("viewer-error").textContent = generation.error ? statusLine(generation) : "";
  video.hidden = !generation.video;
  $("viewer-download").hidden = !generation.video;
  if (generation.video) {
    video.src = generation.video.url;
    $("viewer-download").href = generation.video.url;
    $("viewer-download").download = generation.video.file_name;
  } else {
    video.removeAttribute("src");
  }
  const p = generation.parameters;
  const rows = [
    ["Model", generation.model],
    ["Prompt", p.prompt],
    ["Negative prompt", p.negative_prompt],
    ["Aspect ratio", p.aspect_ratio],
    ["Duration", `${p.duration} s`],
    ["CFG scale", p.cfg_scale],
    ["Camera", p.camera_control || p.camera || "still"],
    ["Seed", generation.seed],
    ["Input image", p.image_to_video ? "yes" : "no"],
    ["Size", `${generation.meta.width}x${generation.meta.height} at ${generation.meta.fps} fps`],
    ["Created", new Date(generation.created_at).toLocaleString()],
    ["Id", generation.id],
  ];
  $("viewer-params").replaceChildren(...rows.filter(([, v]) => v !== "" && v != null).flatMap(
    ([name, value]) => {
      const term = document.createElement("dt");
      term.textContent = name;
      const detail = document.createElement("dd");
      detail.textContent = String(value);
      return [term, detail];
    },
  ));
  if (!dialog.open) dialog.showModal();
  if (generation.video) video.play().catch(() => {});
}

function closeViewer() {
  const video = $("viewer-video");
  video.pause();
  $("viewer").close();
}

// Fills the form with a generation's parameters and its seed, for a variation.
function again(generation) {
  const p = generation.parameters;
  if (state.models.has(generation.model)) $("f-model").value = generation.model;
  applyModel();
  $("f-prompt").value = p.prompt;
  $("f-negative_prompt").value = p.negative_prompt;
  if (p.aspect_ratio) $("f-aspect_ratio").value = p.aspect_ratio;
  $("f-duration").value = String(p.duration);
  $("f-cfg_scale").value = String(p.cfg_scale);
  $("f-camera_control").value = p.camera_control || "";
  $("f-seed").value = String(generation.seed);
  closeViewer();
  $("f-prompt").focus();
}

function setUpGallery() {
  $("gallery-more").addEventListener("click", () => loadGallery(false).catch(showLoadError));
  $("viewer-close").addEventListener("click", closeViewer);
  $("viewer").addEventListener("close", () => $("viewer-video").pause());
  $("viewer-again").addEventListener("click", () => again(state.viewing));
  $("viewer-delete").addEventListener("click", async () => {
    const generation = state.viewing;
    try {
      await api(`${API}/${generation.id}`, { method: "DELETE" });
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) {
        $("viewer-error").textContent = error.message;
        return;
      }
    }
    closeViewer();
    for (const element of document.querySelectorAll(`li[data-id="${CSS.escape(generation.id)}"]`)) {
      element.remove();
    }
    $("gallery-empty").hidden = $("gallery-list").children.length > 0;
    $("queue-empty").hidden = $("queue-list").children.length > 0;
  });
}

// --- start -----------------------------------------------------------------------------

function showLoadError(error) {
  if (!(error instanceof ApiError && error.status === 401)) {
    $("form-error").textContent = `Could not reach the server: ${error.message}`;
  }
}

async function loadEverything() {
  try {
    await loadModels();
    await loadGallery(true);
    return true;
  } catch (error) {
    showLoadError(error);
    return false;
  }
}

async function start() {
  setUpKey();
  setUpForm();
  setUpGallery();
  const config = await (await fetch("/studio/config.json")).json();
  state.keyRequired = config.key_required;
  $("key-toggle").hidden = !config.key_required;
  if (config.key_required && !localStorage.getItem(KEY_STORAGE)) {
    askForKey("");
    return;
  }
  await loadEverything();
}

start();
