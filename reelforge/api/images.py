"""Turning a request's `image_url` into a checked PNG: data URI, bare base64, or http(s).

Downloads are capped in size and time and never reach loopback, private, link-local or
otherwise internal addresses (unless a setting allows it), so a request cannot make the
server probe its own network. Every image is decoded before it is accepted.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import socket
import warnings
from urllib.parse import urljoin, urlparse

import httpx
from PIL import Image, UnidentifiedImageError

from reelforge.errors import FieldError, InvalidRequest, PayloadTooLarge

__all__ = ["ImagePolicy", "fetch_image"]

_MAX_REDIRECTS = 3


class ImagePolicy:
    """Limits applied to input images (from Settings)."""

    def __init__(
        self,
        *,
        max_bytes: int,
        max_pixels: int,
        timeout_s: float,
        allow_private: bool,
        field: str = "image_url",
    ) -> None:
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.timeout_s = timeout_s
        self.allow_private = allow_private
        self.field = field

    def invalid(self, problem: str) -> InvalidRequest:
        return InvalidRequest(FieldError(self.field, problem))


def fetch_image(value: str, policy: ImagePolicy) -> bytes:
    """Return the image named by `value` re-encoded as PNG, or raise a 4xx naming the field."""
    value = value.strip()
    scheme = urlparse(value).scheme.lower()
    if scheme in ("http", "https"):
        data = _download(value, policy)
    elif scheme == "data":
        data = _decode_data_uri(value, policy)
    elif scheme:
        raise policy.invalid(f"unsupported scheme {scheme!r}; use http(s), a data URI or base64")
    else:
        data = _decode_base64(value, policy)
    return _to_png(data, policy)


def _decode_data_uri(value: str, policy: ImagePolicy) -> bytes:
    header, sep, payload = value.partition(",")
    if not sep or ";base64" not in header.lower():
        raise policy.invalid("a data URI must be base64-encoded: data:image/png;base64,...")
    return _decode_base64(payload, policy)


def _decode_base64(payload: str, policy: ImagePolicy) -> bytes:
    # Four base64 characters carry three bytes; refuse before decoding anything too big.
    if len(payload) * 3 // 4 > policy.max_bytes:
        raise PayloadTooLarge(f"{policy.field}: image is larger than {policy.max_bytes} bytes")
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise policy.invalid("is neither an http(s) URL, a data URI, nor valid base64") from None


def _download(url: str, policy: ImagePolicy) -> bytes:
    with httpx.Client(timeout=policy.timeout_s, follow_redirects=False) as client:
        for _ in range(_MAX_REDIRECTS + 1):
            _check_address(url, policy)
            try:
                with client.stream("GET", url) as response:
                    _check_peer(response, policy)
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code >= 400:
                        raise policy.invalid(
                            f"could not be downloaded: the server answered {response.status_code}"
                        )
                    return _read_capped(response, policy)
            except httpx.TimeoutException:
                raise policy.invalid(
                    f"could not be downloaded within {policy.timeout_s:g} s"
                ) from None
            except httpx.HTTPError as exc:
                raise policy.invalid(f"could not be downloaded: {type(exc).__name__}") from None
    raise policy.invalid(f"could not be downloaded: more than {_MAX_REDIRECTS} redirects")


def _read_capped(response: httpx.Response, policy: ImagePolicy) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_bytes:
        raise PayloadTooLarge(f"{policy.field}: image is larger than {policy.max_bytes} bytes")
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > policy.max_bytes:
            raise PayloadTooLarge(f"{policy.field}: image is larger than {policy.max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_address(url: str, policy: ImagePolicy) -> None:
    """Refuse hosts that resolve to internal addresses (every address must be public)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise policy.invalid("redirected to something other than an http(s) URL")
    if policy.allow_private:
        return
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or 443, type=socket.SOCK_STREAM)
    except OSError:
        raise policy.invalid(
            f"could not be downloaded: host {parsed.hostname!r} not found"
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise policy.invalid(
                f"points to a non-public address ({address}); this server does not fetch "
                "from loopback, private or link-local networks"
            )


def _check_peer(response: httpx.Response, policy: ImagePolicy) -> None:
    """Check the address actually connected to, in case DNS changed since `_check_address`."""
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if policy.allow_private or not peer:
        return
    if not ipaddress.ip_address(peer[0]).is_global:
        raise policy.invalid(f"points to a non-public address ({peer[0]})")


def _to_png(data: bytes, policy: ImagePolicy) -> bytes:
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, on decompression bombs; we check pixels ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > policy.max_pixels:
                    raise policy.invalid(
                        f"image has {image.width}x{image.height} pixels, more than the "
                        f"limit of {policy.max_pixels}"
                    )
                image.load()
                rgb = image.convert("RGB")
    except InvalidRequest:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise policy.invalid("is not a decodable image (PNG, JPEG, WebP, ...)") from None
    if rgb.width < 2 or rgb.height < 2:
        raise policy.invalid("image is too small (at least 2x2 pixels)")
    out = io.BytesIO()
    rgb.save(out, format="PNG")
    return out.getvalue()
