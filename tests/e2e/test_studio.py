"""The studio at `/` and the API docs, in a real browser against a real server process.

Playwright drives Debian's chromium (`/usr/bin/chromium`, which `.ci/run` installs; never a
browser Playwright downloads) against `reelforge serve` on loopback with the testsrc engine.
Each test watches the page's console and fails on any error it did not expect. Screenshots
go to the test's tmp dir (and to `docs/screenshots/`, the README's, with
REELFORGE_UPDATE_SCREENSHOTS=1).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Route,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.e2e.conftest import REPO_ROOT, LiveServer, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
T2V = "klingai/v2-master-text-to-video"
I2V = "klingai/v2-master-image-to-video"
KEY = "studio-e2e-key"
STEP_TIMEOUT_MS = 90_000
PAGE_SIZE = 12  # the studio's gallery page (studio.js)
# What chromium logs for an API answer the test provoked on purpose (a 400).
BAD_REQUEST_LOG = "Failed to load resource: the server responded with a status of 400"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does)")
    # A generation on a loaded CI machine takes longer than expect's default 5 s.
    expect.set_options(timeout=STEP_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def keyless(module_server_factory: Callable[..., LiveServer]) -> LiveServer:
    return module_server_factory()


@pytest.fixture(scope="module")
def keyed(
    module_server_factory: Callable[..., LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> LiveServer:
    return module_server_factory(data_dir=tmp_path_factory.mktemp("keyed") / "data", api_keys=KEY)


@pytest.fixture(scope="module")
def gated(
    module_server_factory: Callable[..., LiveServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Path]]:
    """A server whose text-to-video jobs run until a test cancels them (the gate fixture
    engine, never released), so the queue holds still while the page shows it."""
    root = tmp_path_factory.mktemp("gated")
    gate = root / "gate"
    gate.mkdir()
    models = root / "models.toml"
    models.write_text(
        f'[models."{T2V}"]\nengine = "tests.fixtures.engines:GateEngine"\ncheckpoint = "{gate}"\n'
    )
    yield module_server_factory(data_dir=root / "data", models_file=str(models)), gate
    (gate / "release").touch()  # whatever still runs ends now


class Tab:
    """A page in a fresh browser context, with every console error and page error kept."""

    def __init__(self, browser: Browser, viewport: ViewportSize) -> None:
        self.context = browser.new_context(viewport=viewport)
        self.context.set_default_timeout(STEP_TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_tab(browser: Browser) -> Iterator[Callable[[ViewportSize], Tab]]:
    tabs: list[Tab] = []

    def open_one(viewport: ViewportSize) -> Tab:
        tabs.append(Tab(browser, viewport))
        return tabs[-1]

    yield open_one
    for tab in tabs:
        tab.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    """Into the test's tmp dir; also into `docs/screenshots/` (the README's) when
    REELFORGE_UPDATE_SCREENSHOTS=1, so a test run leaves the checkout as it was."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("REELFORGE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SCREENSHOTS / name)
    return path


def load_studio(page: Page, server: LiveServer) -> None:
    page.goto(server.base_url + "/")
    expect(page.locator("#f-model option")).not_to_have_count(0)


def generate(page: Page) -> str:
    """Submit the form; wait until the new job's progress reads 100 %; its id."""
    queue = page.locator("#queue-list li.job")
    before = queue.count()
    page.click("#generate")
    expect(queue).to_have_count(before + 1)  # the new job is on top
    job = queue.first
    expect(job).to_have_attribute("data-id", re.compile(r".+"))
    job_id = str(job.get_attribute("data-id"))
    item = page.locator(f'#queue-list li[data-id="{job_id}"]')
    expect(item.locator(".job-status")).to_have_text("Completed")
    expect(item.locator(".job-figures")).to_have_text("100 %")
    assert item.locator("progress").evaluate("bar => bar.value") == 100
    return job_id


def play(page: Page, job_id: str) -> dict[str, float]:
    """Open the job's gallery card; wait until its video can play; its readyState and
    duration."""
    page.click(f'#gallery-list li[data-id="{job_id}"] button.card')
    expect(page.locator("#viewer")).to_be_visible()
    page.wait_for_function(
        "() => document.getElementById('viewer-video').readyState >= 2",
        timeout=STEP_TIMEOUT_MS,
    )
    state: dict[str, float] = page.evaluate(
        "() => { const v = document.getElementById('viewer-video');"
        " return {readyState: v.readyState, duration: v.duration}; }"
    )
    return state


def form_follows_the_models_limits(page: Page, server: LiveServer, model: str) -> None:
    """The form's choices, bounds and defaults are the ones `/v1/models` gives `model`."""
    cards = httpx.get(f"{server.base_url}/v1/models", timeout=10).json()["data"]
    limits = next(card for card in cards if card["id"] == model)["parameters"]
    cfg = limits["cfg_scale"]
    assert page.get_attribute("#f-cfg_scale", "min") == str(cfg["minimum"])
    assert page.get_attribute("#f-cfg_scale", "max") == str(cfg["maximum"])
    assert float(page.input_value("#f-cfg_scale")) == cfg["default"]
    durations = page.locator("#f-duration option").evaluate_all("(os) => os.map((o) => o.value)")
    assert durations == [str(d) for d in limits["duration"]["choices"]]
    assert page.input_value("#f-duration") == str(limits["duration"]["default"])
    assert page.input_value("#f-aspect_ratio") == limits["aspect_ratio"]["default"]
    assert page.get_attribute("#f-prompt", "maxlength") == str(limits["prompt"]["max_length"])


def test_generate_watch_play_and_delete(
    keyless: LiveServer, open_tab: Callable[[ViewportSize], Tab], tmp_path: Path
) -> None:
    tab = open_tab(DESKTOP)
    page = tab.page
    load_studio(page, keyless)
    assert page.locator("#key-panel").is_hidden()  # keyless on loopback: no key asked for
    page.select_option("#f-model", T2V)
    form_follows_the_models_limits(page, keyless, T2V)
    page.fill("#f-prompt", "a red circle drifting right")
    page.fill("#f-negative_prompt", "blur")
    page.select_option("#f-aspect_ratio", "16:9")
    page.select_option("#f-duration", "10")  # not the default: the form must send it
    page.fill("#f-cfg_scale", "0.6")
    page.select_option("#f-camera_control", "down_back")
    page.fill("#f-seed", "1234")

    job_id = generate(page)

    card = page.locator(f'#gallery-list li[data-id="{job_id}"]')
    image = card.locator("img")
    assert "thumbnail.webp" in str(image.get_attribute("src"))
    card.locator("button").hover()
    expect(image).to_have_attribute("src", re.compile(r"preview\.gif"))
    state = play(page, job_id)
    assert state["readyState"] >= 2
    assert abs(state["duration"] - 10) < 0.25, state
    screenshot(page, tmp_path, "studio-viewer.png")
    params = page.locator("#viewer-params").inner_text()
    for shown in ("a red circle drifting right", "blur", "down_back", "1234", "0.6", "16:9"):
        assert shown in params
    download = page.locator("#viewer-download")
    assert str(download.get_attribute("href")).startswith(keyless.base_url + "/files/")
    assert download.get_attribute("download") == f"{job_id}.mp4"

    page.click("#viewer-again")  # the form again, with this seed
    assert page.input_value("#f-seed") == "1234"
    assert page.input_value("#f-prompt") == "a red circle drifting right"
    assert page.input_value("#f-camera_control") == "down_back"
    screenshot(page, tmp_path, "studio-desktop.png")

    play(page, job_id)
    page.click("#viewer-delete")
    expect(card).to_have_count(0)
    answer = httpx.get(f"{keyless.base_url}/v2/video/generations/{job_id}", timeout=10)
    assert answer.status_code == 404
    assert tab.errors == []


def test_image_to_video_from_an_uploaded_image(
    keyless: LiveServer, open_tab: Callable[[ViewportSize], Tab], tmp_path: Path
) -> None:
    image = tmp_path / "start.png"
    Image.new("RGB", (64, 36), (200, 30, 30)).save(image)
    tab = open_tab(DESKTOP)
    page = tab.page
    load_studio(page, keyless)
    page.select_option("#f-model", I2V)
    expect(page.locator("#image-fields")).to_be_visible()
    expect(page.locator("#hint-image_url")).to_contain_text("Required")
    page.set_input_files("#f-image_file", str(image))
    job_id = generate(page)
    polled = httpx.get(f"{keyless.base_url}/v2/video/generations/{job_id}", timeout=10).json()
    assert polled["model"] == I2V and polled["parameters"]["image_to_video"] is True

    # The URL field instead of a file: a data URI (the API takes http(s), data URIs and base64).
    page.set_input_files("#f-image_file", [])
    encoded = base64.b64encode(image.read_bytes()).decode()
    page.fill("#f-image_url", f"data:image/png;base64,{encoded}")
    by_url = generate(page)
    assert by_url != job_id
    polled = httpx.get(f"{keyless.base_url}/v2/video/generations/{by_url}", timeout=10).json()
    assert polled["status"] == "completed" and polled["parameters"]["image_to_video"] is True
    assert tab.errors == []


def test_the_queue_shows_position_progress_and_eta_and_cancels(
    gated: tuple[LiveServer, Path], open_tab: Callable[[ViewportSize], Tab], tmp_path: Path
) -> None:
    server, _gate = gated
    tab = open_tab(DESKTOP)
    page = tab.page
    load_studio(page, server)
    jobs = {}
    for prompt in ("first", "second", "third"):
        page.fill("#f-prompt", prompt)
        page.click("#generate")
        newest = page.locator("#queue-list li.job").first
        expect(newest.locator(".job-title")).to_have_text(prompt)
        # By id: `.first` would follow whichever item is on top now.
        jobs[prompt] = page.locator(f'#queue-list li[data-id="{newest.get_attribute("data-id")}"]')
    first, second, third = jobs["first"], jobs["second"], jobs["third"]
    expect(first.locator(".job-status")).to_have_text("Generating")
    # The engine's step, percent done and, from 2 % on, the time left.
    expect(first.locator(".job-figures")).to_have_text(
        re.compile(r"^step [1-9]\d* of [1-9]\d* · [1-9]\d* % · ETA \d")
    )
    expect(second.locator(".job-status")).to_have_text("Queued, 0 ahead")
    expect(third.locator(".job-status")).to_have_text("Queued, 1 ahead")
    screenshot(page, tmp_path, "studio-queue.png")

    canceled = "canceled: the generation was canceled"
    second.locator("button").click()
    expect(second.locator(".job-status")).to_have_text(canceled)
    expect(third.locator(".job-status")).to_have_text("Queued, 0 ahead")  # one fewer ahead
    first.locator("button").click()
    expect(first.locator(".job-status")).to_have_text(canceled)
    expect(third.locator(".job-status")).to_have_text("Generating")
    third.locator("button").click()
    expect(third.locator(".job-status")).to_have_text(canceled)
    second.locator("button", has_text="Dismiss").click()
    expect(page.locator("#queue-list li.job")).to_have_count(2)
    assert tab.errors == []


def test_the_gallery_pages_with_load_more(
    gated: tuple[LiveServer, Path], open_tab: Callable[[ViewportSize], Tab]
) -> None:
    server, _gate = gated
    api = f"{server.base_url}/v2/video/generations"
    made = [
        httpx.post(api, json={"model": T2V, "prompt": f"page {n}"}, timeout=10).json()["id"]
        for n in range(PAGE_SIZE + 1)
    ]
    for generation_id in made:  # canceled: finished, so the page follows none of them
        httpx.post(f"{api}/{generation_id}/cancel", timeout=10)

    def all_ended() -> bool:
        listed = httpx.get(api, params={"limit": 100}, timeout=10).json()["data"]
        return all(g["status"] == "error" for g in listed)

    wait_for(all_ended, 60, "every generation to end")
    total = len(httpx.get(api, params={"limit": 100}, timeout=10).json()["data"])
    assert PAGE_SIZE < total <= 2 * PAGE_SIZE  # two pages: this module makes few others
    tab = open_tab(DESKTOP)
    page = tab.page
    load_studio(page, server)
    cards = page.locator("#gallery-list li")
    expect(cards).to_have_count(PAGE_SIZE)
    page.click("#gallery-more")
    expect(cards).to_have_count(total)
    expect(page.locator("#gallery-more")).to_be_hidden()  # no third page
    shown = cards.evaluate_all("items => items.map(item => item.dataset.id)")
    assert len(set(shown)) == len(shown)  # no card twice
    assert set(made) <= set(shown)
    assert tab.errors == []


def test_an_invalid_field_shows_the_api_message_next_to_it(
    keyless: LiveServer, open_tab: Callable[[ViewportSize], Tab]
) -> None:
    tab = open_tab(DESKTOP)
    page = tab.page
    load_studio(page, keyless)
    page.select_option("#f-model", T2V)
    page.fill("#f-prompt", "a blue square")
    page.fill("#f-cfg_scale", "3")
    page.click("#generate")

    expected = httpx.post(
        keyless.base_url + "/v2/video/generations",
        json={"model": T2V, "prompt": "a blue square", "duration": 5, "cfg_scale": 3},
        timeout=10,
    ).json()["errors"]
    assert [e["field"] for e in expected] == ["cfg_scale"]
    expect(page.locator("#error-cfg_scale")).to_have_text(expected[0]["message"])
    assert page.get_attribute("#f-cfg_scale", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "f-cfg_scale"
    assert page.locator("#error-prompt").inner_text() == ""
    assert page.locator("#queue-list li").count() == 0
    assert [e for e in tab.errors if not e.startswith(BAD_REQUEST_LOG)] == []


def test_phone_sized_and_keyboard_only(
    keyless: LiveServer, open_tab: Callable[[ViewportSize], Tab], tmp_path: Path
) -> None:
    tab = open_tab(PHONE)
    page = tab.page
    load_studio(page, keyless)
    # Reach the prompt with Tab alone: every control before it is in the focus order.
    for _ in range(10):
        if page.evaluate("document.activeElement.id") == "f-prompt":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-prompt"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # focus is visible
    page.keyboard.type("a green triangle on a phone")
    for _ in range(20):
        if page.evaluate("document.activeElement.id") == "generate":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "generate"
    page.keyboard.press("Enter")
    job = page.locator("#queue-list li.job").first
    expect(job.locator(".job-figures")).to_have_text("100 %")
    expect(page.locator("#gallery-list li img").first).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    screenshot(page, tmp_path, "studio-phone.png")
    # A gallery card opens the player from the keyboard, and Escape closes it.
    page.focus("#gallery-list li button.card")
    page.keyboard.press("Enter")
    expect(page.locator("#viewer")).to_be_visible()
    assert page.evaluate("document.getElementById('viewer').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()
    assert tab.errors == []


def test_a_keyed_server_asks_for_the_key_and_works_once_given(
    keyed: LiveServer, open_tab: Callable[[ViewportSize], Tab]
) -> None:
    tab = open_tab(DESKTOP)
    page = tab.page
    page.goto(keyed.base_url + "/")
    expect(page.locator("#key-panel")).to_be_visible()
    assert page.evaluate("document.activeElement.id") == "api-key"
    assert page.locator("#f-model option").count() == 0  # nothing loaded without the key

    page.fill("#api-key", KEY)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-panel")).to_be_hidden()
    expect(page.locator("#f-model option")).not_to_have_count(0)
    assert page.evaluate("localStorage.getItem('reelforge.apiKey')") == KEY
    page.select_option("#f-model", T2V)
    page.fill("#f-prompt", "a keyed circle")
    job_id = generate(page)

    page.reload()  # the key stays in this browser
    expect(page.locator(f'#gallery-list li[data-id="{job_id}"]')).to_have_count(1)
    assert page.locator("#key-panel").is_hidden()
    assert tab.errors == []


def test_docs_render_every_route_with_the_network_cut_off(
    keyless: LiveServer, open_tab: Callable[[ViewportSize], Tab]
) -> None:
    tab = open_tab(DESKTOP)
    blocked: list[str] = []

    def loopback_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    tab.context.route("**/*", loopback_only)
    document = httpx.get(keyless.base_url + "/openapi.json", timeout=10).json()
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    page = tab.page
    page.goto(keyless.base_url + "/docs")
    operations = page.locator(".opblock-summary")
    expect(operations).to_have_count(len(documented))
    listed = set()
    for summary in operations.all():
        method = summary.locator(".opblock-summary-method").inner_text()
        path = summary.locator(".opblock-summary-path").get_attribute("data-path")
        listed.add((method, path))
    assert listed == documented
    # The request and response schemas are there too, not only the routes.
    models = page.locator(".models")
    expect(models).to_contain_text("CreateVideoRequest")
    expect(models).to_contain_text("Generation")
    answer = httpx.get(keyless.base_url + "/redoc", timeout=10)
    assert answer.status_code == 404  # no ReDoc: its bundle loads a logo from a CDN
    assert blocked == []
    assert tab.errors == []
