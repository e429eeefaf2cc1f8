"""Turning a request's `image_url` into a checked PNG: data URI, bare base64, or http(s).

Downloads go through `reelforge.net` (the address guard, a total deadline, a size cap, a
bound on fetches in flight). Decoding runs on its own two threads under a pixel budget: a
small PNG can decode to 36 Mpx (over 100 MB as RGB), so four at once used to take the API
process past a gigabyte; now images wait for budget instead, and the event loop and the
request thread pool stay free for polls whatever is being decoded.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import io
import re
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from reelforge.errors import FieldError, InvalidRequest, PayloadTooLarge
from reelforge.net import FetchFailed, FetchTooLarge, OutboundPolicy, fetch_bytes
from reelforge.net.fetch import tls_context

__all__ = ["ImageIntake", "ImagePolicy"]

_DECODE_THREADS = 2


class ImagePolicy:
    """Limits applied to input images (from Settings)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        max_pixels: int,
        timeout_s: float,
        outbound: OutboundPolicy,
        fetch_concurrency: int = 16,
        decode_budget_pixels: int = 0,
        field: str = "image_url",
    ) -> None:
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.timeout_s = timeout_s
        self.outbound = outbound
        self.fetch_concurrency = fetch_concurrency
        # At least one largest-allowed image must fit, or such an image would wait forever.
        self.decode_budget_pixels = max(decode_budget_pixels, max_pixels)
        self.field = field

    def for_field(self, field: str) -> ImagePolicy:
        """The same limits, for an image that comes in another body field."""
        policy = copy.copy(self)
        policy.field = field
        return policy

    def invalid(self, problem: str) -> InvalidRequest:
        return InvalidRequest(FieldError(self.field, problem))

    def too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"{self.field}: image too large (more than {self.max_bytes} bytes)", field=self.field
        )


class ImageIntake:
    """Fetches and decodes input images for one API process; create it once and share it."""

    def __init__(self, policy: ImagePolicy) -> None:
        self.policy = policy
        self._fetch_slots = asyncio.Semaphore(policy.fetch_concurrency)
        self._budget = _PixelBudget(policy.decode_budget_pixels)
        self._decoder = ThreadPoolExecutor(_DECODE_THREADS, thread_name_prefix="image-decode")
        tls_context()  # built now, at start-up, rather than inside the first request

    def close(self) -> None:
        self._decoder.shutdown(wait=False, cancel_futures=True)

    async def load_png(self, value: str, field: str | None = None) -> bytes:
        """The image named by `value` re-encoded as PNG, or a 4xx naming the field (`field`,
        else the policy's)."""
        policy = self.policy if field is None else self.policy.for_field(field)
        value = value.strip()
        scheme = _scheme(value)
        if scheme in ("http", "https"):
            try:
                data = await fetch_bytes(
                    value,
                    policy=policy.outbound,
                    max_bytes=policy.max_bytes,
                    deadline_s=policy.timeout_s,
                    limiter=self._fetch_slots,
                )
            except FetchTooLarge:
                raise policy.too_large() from None
            except FetchFailed as exc:
                raise policy.invalid(str(exc)) from None
        elif scheme == "data":
            data = _decode_data_uri(value, policy)
        elif scheme:
            raise policy.invalid(
                f"unsupported scheme {scheme!r}; use http(s), a data URI or base64"
            )
        else:
            data = _decode_base64(value, policy)
        pixels = _pixels(data, policy)  # the header only: cheap, before any budget is taken
        held = await self._budget.acquire(pixels)
        loop = asyncio.get_running_loop()
        try:
            decoding = self._decoder.submit(_to_png, data, policy)
        except BaseException:
            self._budget.release(held)
            raise
        decoding.add_done_callback(lambda _: loop.call_soon_threadsafe(self._budget.release, held))
        return await asyncio.wrap_future(decoding)


def _scheme(value: str) -> str:
    head = value[:16]
    if ":" not in head:
        return ""  # bare base64 has no colon
    try:
        return urlsplit(value[: value.index(":") + 3]).scheme.lower()
    except ValueError:
        return ""


def _decode_data_uri(value: str, policy: ImagePolicy) -> bytes:
    header, sep, payload = value.partition(",")
    if not sep or ";base64" not in header.lower():
        raise policy.invalid("a data URI must be base64-encoded: data:image/png;base64,...")
    return _decode_base64(payload, policy)


def _decode_base64(payload: str, policy: ImagePolicy) -> bytes:
    # Four base64 characters carry three bytes; refuse before decoding anything too big.
    if len(payload) * 3 // 4 > policy.max_bytes:
        raise policy.too_large()
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise policy.invalid("is neither an http(s) URL, a data URI, nor valid base64") from None


def _open(data: bytes, policy: ImagePolicy) -> Image.Image:
    """The image with its header read, nothing decoded (`Image.open` is lazy)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns on decompression bombs; we check pixels ourselves (`_pixels`).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # Pillow refuses from the header alone past twice its own limit (179 Mpx): a bomb,
        # to be named as one rather than as an undecodable file.
        raise policy.invalid(_declared_too_large(exc, policy)) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise policy.invalid("is not a decodable image (PNG, JPEG, WebP, ...)") from None


def _declared_too_large(exc: Image.DecompressionBombError, policy: ImagePolicy) -> str:
    # Pillow's message carries the declared count ("Image size (N pixels) exceeds ...").
    found = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"declares {found[1]} pixels" if found else "declares too many pixels"
    return f"image {declared}, more than the limit of {policy.max_pixels}; it was not decoded"


def _pixels(data: bytes, policy: ImagePolicy) -> int:
    with _open(data, policy) as image:
        width, height = image.size
    if width * height > policy.max_pixels:
        raise policy.invalid(
            f"image has {width}x{height} pixels, more than the limit of {policy.max_pixels}"
        )
    if width < 2 or height < 2:
        raise policy.invalid("image is too small (at least 2x2 pixels)")
    return width * height


def _to_png(data: bytes, policy: ImagePolicy) -> bytes:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open(data, policy) as image:
                image.load()
                rgb = image if image.mode == "RGB" else image.convert("RGB")
                out = io.BytesIO()
                # Fast compression: the PNG is an internal copy, read once by a worker.
                rgb.save(out, format="PNG", compress_level=1)
    except InvalidRequest:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise policy.invalid("is not a decodable image (PNG, JPEG, WebP, ...)") from None
    return out.getvalue()


class _PixelBudget:
    """At most `total` pixels being decoded at once across requests; waiters queue in order.

    Released when the decode thread finishes, not when the request ends: a client that goes
    away does not stop a decode already running, and its pixels stay counted until it ends.
    """

    def __init__(self, total: int) -> None:
        self._total = total
        self._used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, pixels: int) -> int:
        pixels = min(pixels, self._total)
        if not self._waiters and self._used + pixels <= self._total:
            self._used += pixels
            return pixels
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((pixels, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(pixels)  # granted, then cancelled before it could be used
            raise
        return pixels

    def release(self, pixels: int) -> None:
        self._used -= pixels
        while self._waiters and self._used + self._waiters[0][0] <= self._total:
            wanted, granted = self._waiters.popleft()
            if not granted.done():  # a cancelled waiter is skipped
                self._used += wanted
                granted.set_result(None)
