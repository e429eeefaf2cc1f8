"""`ReelforgeClient`: the blocking client for a reelforge (or AI/ML API) video server.

from reelforge.client import ReelforgeClient

with ReelforgeClient("http://127.0.0.1:8000") as client:
    generation = client.generate("a red fox in the snow", duration=5)
    client.download(generation.video.url, Path("fox.mp4"))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from reelforge.client._common import (
    GENERATIONS_PATH,
    RECONNECT_ATTEMPTS,
    USER_AGENT,
    Deadline,
    api_headers,
    connection_failed,
    default_model,
    events_path,
    generation_body,
    generation_from_event,
    generation_path,
    list_params,
    partial_file,
    read_deleted,
    read_generation,
    read_models,
    read_page,
    read_usage,
    reconnect_delay_s,
    resolve_api_key,
    resolve_base_url,
    stream_headers,
    stream_timeout,
    usage_params,
)
from reelforge.client._errors import (
    GenerationFailed,
    ServerError,
    UnexpectedResponse,
    WaitTimeout,
    error_from_response,
)
from reelforge.client._models import DeletedGeneration, Generation, GenerationPage, ModelInfo
from reelforge.client._sse import SSEParser

__all__ = ["ReelforgeClient"]

OnUpdate = Callable[[Generation], None]


class ReelforgeClient:
    """Submit video generations, wait for them and download the results (blocking).

    `transport` replaces the network, e.g. `httpx.MockTransport(handler)` in tests.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = resolve_base_url(base_url)
        self.timeout_s = timeout_s
        self._headers = api_headers(resolve_api_key(api_key))
        # The key goes on API calls only, never on the client: artifact URLs may point at
        # another host (S3), which must not see it and would reject a second auth scheme.
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            transport=transport,
            headers={"User-Agent": USER_AGENT},
        )

    def __enter__(self) -> ReelforgeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool; the client cannot be used afterwards."""
        self._http.close()

    def create_generation(
        self,
        prompt: str | None = None,
        *,
        model: str | None = None,
        image_url: str | None = None,
        duration: int | None = None,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        cfg_scale: float | None = None,
        camera_control: str | None = None,
        seed: int | None = None,
    ) -> Generation:
        """Submit a generation and return it as queued; only the arguments given are sent.

        `model` defaults to the text-to-video model, or the image-to-video one when
        `image_url` (an http(s) URL or a data URI, see `image_to_data_uri`) is given.
        """
        body = generation_body(
            prompt,
            model=model or default_model(image_url),
            image_url=image_url,
            duration=duration,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            cfg_scale=cfg_scale,
            camera_control=camera_control,
            seed=seed,
        )
        return read_generation(self._request("POST", GENERATIONS_PATH, json=body))

    def get_generation(self, generation_id: str) -> Generation:
        """The generation's current state (one poll)."""
        params = {"generation_id": generation_id}
        return read_generation(self._request("GET", GENERATIONS_PATH, params=params))

    def cancel_generation(self, generation_id: str) -> Generation:
        """Cancel a generation: a queued one ends at once, a running one at its next step.

        Returns the generation as it stands (poll it to see it end as `error`, named
        "canceled"); raises `Conflict` if it had already completed or failed.
        """
        path = f"{generation_path(generation_id)}/cancel"
        return read_generation(self._request("POST", path))

    def list_generations(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        status: str | Sequence[str] | None = None,
        model: str | None = None,
    ) -> GenerationPage:
        """One page of this key's generations, newest first (reelforge's addition).

        `limit` is 1..100 (the server's default is 20); `after` takes the previous page's
        `last_id`; `status` one status word or several (`queued`, `generating`,
        `completed`, `error`); `model` one model id. `iter_generations` pages for you.
        """
        params = list_params(limit=limit, after=after, status=status, model=model)
        return read_page(self._request("GET", GENERATIONS_PATH, params=params))

    def iter_generations(
        self,
        *,
        status: str | Sequence[str] | None = None,
        model: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Generation]:
        """Every generation that matches, newest first, fetching page after page as it goes."""
        after: str | None = None
        while True:
            page = self.list_generations(limit=page_size, after=after, status=status, model=model)
            yield from page.data
            if not page.has_more or page.last_id is None:
                return
            after = page.last_id

    def delete_generation(self, generation_id: str) -> DeletedGeneration:
        """Delete a generation and its files (reelforge's addition); a running one is
        canceled first. Afterwards it and its file links answer 404 (`NotFound`)."""
        return read_deleted(self._request("DELETE", generation_path(generation_id)))

    def stream(
        self,
        generation_id: str,
        *,
        poll_interval_s: float = 1.0,
        timeout_s: float | None = None,
    ) -> Iterator[Generation]:
        """Yield the generation each time it changes, its final state last.

        Reads the server's event stream (`GET …/{id}/events`), reconnecting with
        `Last-Event-ID` when the connection drops, so no state change is missed. A server
        without that route (the hosted AI/ML API) is polled every `poll_interval_s`
        instead, and every poll is yielded. Raises `NotFound` if the generation is (or gets)
        deleted, `WaitTimeout` after `timeout_s` (the job itself goes on).
        """
        deadline = Deadline(timeout_s)
        last: Generation | None = None
        last_event_id: str | None = None
        retry_ms: int | None = None
        failures = 0
        while True:
            try:
                with self._http.stream(
                    "GET",
                    events_path(generation_id),
                    headers=stream_headers(self._headers, last_event_id),
                    timeout=stream_timeout(self.timeout_s, deadline),
                ) as response:
                    if response.status_code in (404, 405) and last_event_id is None:
                        response.read()
                        yield from self._poll(generation_id, deadline, poll_interval_s)
                        return
                    if not response.is_success:
                        response.read()
                        error = error_from_response(response)
                        if not isinstance(error, ServerError) or failures >= RECONNECT_ATTEMPTS:
                            raise error
                    else:
                        parser = SSEParser()
                        for line in response.iter_lines():
                            event = parser.feed(line)
                            if event is None:
                                continue
                            failures = 0  # only a stream that says something counts as up
                            last_event_id, retry_ms = event.id, event.retry_ms
                            generation = generation_from_event(event, generation_id)
                            if generation is None:
                                continue
                            last = generation
                            yield generation
                            if generation.is_terminal:
                                return
                            if deadline.expired():
                                raise WaitTimeout(generation, deadline.timeout_s or 0.0)
            except httpx.TransportError as exc:
                if deadline.expired():
                    last = last or self.get_generation(generation_id)
                    raise WaitTimeout(last, deadline.timeout_s or 0.0) from None
                if failures >= RECONNECT_ATTEMPTS:
                    raise connection_failed(exc) from exc
            # Dropped, cut short (a server restart) or refused for now: resume where it was.
            failures += 1
            time.sleep(reconnect_delay_s(failures, retry_ms))

    def _poll(
        self, generation_id: str, deadline: Deadline, poll_interval_s: float
    ) -> Iterator[Generation]:
        while True:
            generation = self.get_generation(generation_id)
            yield generation
            if generation.is_terminal:
                return
            if deadline.expired():
                raise WaitTimeout(generation, deadline.timeout_s or 0.0)
            time.sleep(deadline.next_sleep_s(poll_interval_s))

    def wait(
        self,
        generation_id: str,
        *,
        poll_interval_s: float = 1.0,
        timeout_s: float | None = None,
        on_update: OnUpdate | None = None,
    ) -> Generation:
        """Follow the generation (`stream`) until it finishes; return it once completed.

        `on_update` sees every state `stream` yields, the final one included. Raises
        `GenerationFailed` if the job ends in error and `WaitTimeout` after `timeout_s`
        (the job itself goes on).
        """
        for generation in self.stream(
            generation_id, poll_interval_s=poll_interval_s, timeout_s=timeout_s
        ):
            if on_update is not None:
                on_update(generation)
            if generation.is_terminal:
                if generation.succeeded:
                    return generation
                raise GenerationFailed(generation)
        raise UnexpectedResponse(f"the updates of generation {generation_id} ended unfinished")

    def generate(
        self,
        prompt: str | None = None,
        *,
        model: str | None = None,
        image_url: str | None = None,
        duration: int | None = None,
        aspect_ratio: str | None = None,
        negative_prompt: str | None = None,
        cfg_scale: float | None = None,
        camera_control: str | None = None,
        seed: int | None = None,
        poll_interval_s: float = 1.0,
        timeout_s: float | None = None,
        on_update: OnUpdate | None = None,
    ) -> Generation:
        """Submit a generation and wait for it: `create_generation` then `wait`.

        `on_update` sees the freshly created (queued) state first, then every poll.
        """
        created = self.create_generation(
            prompt,
            model=model,
            image_url=image_url,
            duration=duration,
            aspect_ratio=aspect_ratio,
            negative_prompt=negative_prompt,
            cfg_scale=cfg_scale,
            camera_control=camera_control,
            seed=seed,
        )
        if on_update is not None:
            on_update(created)
        return self.wait(
            created.id, poll_interval_s=poll_interval_s, timeout_s=timeout_s, on_update=on_update
        )

    def download(self, url: str, path: Path) -> Path:
        """Save an artifact URL to `path` (streamed; the file appears only when complete)."""
        target = Path(path)
        try:
            with self._http.stream("GET", url, follow_redirects=True) as response:
                if not response.is_success:
                    response.read()
                    raise error_from_response(response)
                with partial_file(target) as file:
                    for chunk in response.iter_bytes():
                        file.write(chunk)
        except httpx.TransportError as exc:
            raise connection_failed(exc) from exc
        return target

    def models(self) -> list[ModelInfo]:
        """The models the server offers."""
        return read_models(self._request("GET", "/v1/models"))

    def usage(self, days: int = 30, tenant: str | None = None) -> dict[str, Any]:
        """What this key used over the last `days` days, per day and model (`GET /v1/usage`);
        an admin key may name another `tenant`, or "all"."""
        return read_usage(self._request("GET", "/v1/usage", params=usage_params(days, tenant)))

    def health(self) -> bool:
        """Whether the server is up and has a worker ready (`GET /healthz` answers 200)."""
        return self._request("GET", "/healthz").status_code == 200

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            return self._http.request(method, path, headers=self._headers, json=json, params=params)
        except httpx.TransportError as exc:
            raise connection_failed(exc) from exc
