"""Reading a `text/event-stream` body: the WHATWG "event stream interpretation", line by line.

Small enough to own rather than depend on (the client needs httpx only, and works the same
against a server that is not reelforge): `SSEParser.feed(line)` takes each line without its
ending, as `httpx.Response.iter_lines` gives them, and returns an `SSEvent` at each blank
line that ends one. Comments (`: ping`) and fields the spec does not name are skipped; an
event without `data` is not dispatched, as a browser's `EventSource` would not.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEParser", "SSEvent"]


@dataclass(frozen=True)
class SSEvent:
    event: str
    """`message` unless the server named it."""
    data: str
    id: str | None
    """The last event id seen so far in the stream (ids carry over to later events)."""
    retry_ms: int | None = None


class SSEParser:
    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> SSEvent | None:
        """One line of the stream; the event it completes, if any."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:  # the spec ignores such ids
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> SSEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEvent(
            event=event or "message",
            data="\n".join(data),
            id=self.last_event_id,
            retry_ms=self.retry_ms,
        )
