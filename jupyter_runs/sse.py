"""Server-sent events -> :class:`~jupyter_runs.wire.Event`, incrementally, over byte chunks.

Parsing follows the WHATWG "event stream interpretation" rules: lines end in CRLF, LF or CR (also
split across chunks); one leading BOM is dropped; ``:`` lines are comments (keep-alives); a line
without a colon is a field name with an empty value; one space after the colon is removed;
``data`` lines of one event are joined with ``"\\n"``; ``event`` names it (default ``message``);
``id`` (without NUL) and ``retry`` (ASCII digits only) are kept on the decoder as
``last_event_id`` / ``retry``; a blank line dispatches; an event with no ``data`` is not dispatched.

Where this module departs from WHATWG, on purpose:

* **A final event without a blank line is dispatched** at the end of the stream (WHATWG discards
  it). The spec's own example streams end ``data: [DONE]`` without one, and a completed last line
  is a complete event; a transport that cut the stream short is reported by the transport
  (``backends/http.py`` raises ``APIConnectionError``), not silently repaired here.
* **``data: [DONE]`` ends the stream** (``Event("done", "[DONE]")``); anything after it is ignored.
  Every other ``data`` is JSON: invalid JSON is a :class:`StreamError` naming the event and the SSE
  line, with a short excerpt around the fault (the JSON is never silently passed on as a string).
* **``error`` events raise** :class:`StreamError` with the error's ``message`` and ``code``, in
  both shapes the API uses: ``{"error": {...}}`` and the bare Error object ``{"code", "message"}``.
  An unnamed event whose data is ``{"error": {...}}`` (how Chat Completions servers report errors
  mid-stream) raises too.
* **``strict=True``** (the default; the Assistants protocol) adds two checks WHATWG leaves out, so
  that a broken stream is an error instead of quietly missing events: a line whose field name is
  not ``data``/``event``/``id``/``retry`` (such as the ``...`` lines and the prefix-less
  ``{"id": ...}`` line of the spec's example streams) raises, and so does an event that was named
  but got no ``data`` before its blank line (or the end of the stream). ``strict=False`` is plain
  WHATWG: such lines are ignored and such events dropped.

Speed matters (the 200,000-event benchmark runs through here): bytes are decoded per chunk with an
incremental UTF-8 decoder (invalid bytes become U+FFFD, as WHATWG says), lines are split with
``str.split`` on the whole chunk, and the common ``data: ``/``event: ``/blank lines take a
``startswith`` fast path; the general field parser runs only for the rest. No regexes.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

from .errors import StreamError
from .wire import Event

__all__ = ["SSEDecoder", "aiter_events", "iter_events", "decode", "error_from_event"]

_loads = json.loads
# Event is a frozen dataclass, whose __init__ sets each field through object.__setattr__ (0.7 us per
# event, a fifth of json.loads); setting the slots through their descriptors builds the same
# object in half the time. Used only by _dispatch, once per event.
_new_event = object.__new__
_set_name = Event.__dict__["event"].__set__
_set_data = Event.__dict__["data"].__set__
_EXCERPT = 60  # characters of context shown around a fault


def _excerpt(text: str, pos: int | None = None) -> str:
    """A short, single-line piece of ``text`` around ``pos`` (or its start)."""
    if pos is None:
        pos = 0
    start = max(0, pos - _EXCERPT // 2)
    piece = text[start : start + _EXCERPT]
    piece = piece.replace("\n", "\\n")
    return ("…" if start else "") + piece + ("…" if start + _EXCERPT < len(text) else "")


def error_from_event(event: str, data: Any) -> StreamError:
    """The :class:`StreamError` for an ``error`` event's data, either shape."""
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict):
        err = data if isinstance(data, dict) else {}
    message = err.get("message") or f"the stream sent an error event: {_excerpt(json.dumps(data))}"
    code = err.get("code")
    return StreamError(str(message), code=None if code is None else str(code), event=event, data=data)


class SSEDecoder:
    """Incremental decoder: ``feed(chunk)`` then ``close()``; each yields finished events.

    Both are generators and must be consumed fully (the iterators below do). After ``done`` the
    decoder ignores further input. ``last_event_id`` and ``retry`` hold the latest ``id`` /
    ``retry`` fields, for a caller that wants to resume a stream.
    """

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self.done = False
        self.last_event_id = ""
        self.retry: int | None = None
        self.line = 0  # SSE lines seen, for error messages
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._started = False
        self._skip_lf = False  # the previous chunk ended in CR; a leading LF belongs to it
        self._partial: list[str] = []  # pieces of an unfinished line
        self._event = ""
        self._data: list[str] = []
        self._data_line = 0  # SSE line of the latest data line

    # -- input ------------------------------------------------------------------------------

    def feed(self, chunk: bytes | str) -> Iterator[Event]:
        """Decode ``chunk`` and yield the events it completes."""
        out: list[Event] = []
        try:
            self.take(chunk, out)
        except StreamError:
            yield from out  # the events before the fault are delivered, then the fault
            raise
        yield from out

    def take(self, chunk: bytes | str, out: list[Event]) -> None:
        """``feed`` without a generator: append the events ``chunk`` completes to ``out``. A fault
        raises after appending the events before it, so hand ``out`` on before re-raising.
        (For the HTTP backend's loop: two generator resumptions per event cost more than this.)"""
        if self.done:
            return
        text = chunk if type(chunk) is str else self._utf8.decode(chunk)
        if text:
            self._lines(self._split(text), out)

    def close(self) -> Iterator[Event]:
        """End of stream: finish the last line and dispatch a pending event (see module doc)."""
        if self.done:
            return
        tail = self._utf8.decode(b"", True)
        lines = self._split(tail) if tail else []
        if self._partial:
            lines.append("".join(self._partial))
            self._partial = []
        lines.append("")
        out: list[Event] = []
        try:
            self._lines(lines, out)
        except StreamError:
            yield from out
            raise
        yield from out

    # -- lines ------------------------------------------------------------------------------

    def _split(self, text: str) -> list[str]:
        """Complete lines of ``text``; an unfinished last line is kept for the next chunk."""
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":
                text = text[1:]
        if self._skip_lf:
            self._skip_lf = False
            if text[:1] == "\n":
                text = text[1:]
        if "\r" in text:
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            if text:
                self._partial.append(text)
            return []
        lines = text.split("\n")
        if self._partial:
            self._partial.append(lines[0])
            lines[0] = "".join(self._partial)
            self._partial = []
        tail = lines.pop()
        if tail:
            self._partial.append(tail)
        return lines

    def _lines(self, lines: list[str], out: list[Event]) -> None:
        # The line count lives in a local and is written back wherever it is read (errors,
        # dispatch) and at the end: an attribute update per line was a tenth of the decoder.
        data = self._data
        number = self.line
        try:
            for line in lines:
                number += 1
                if line.startswith("data: "):
                    data.append(line[6:])
                    self._data_line = number
                elif not line:
                    if data:
                        self.line = number
                        out.append(self._dispatch())
                        if self.done:
                            return
                        data = self._data
                    elif self._event:
                        if self.strict:
                            raise StreamError(
                                f"SSE event {self._event!r} has no data: line (blank line at SSE line "
                                f"{number})",
                                event=self._event,
                            )
                        self._event = ""
                elif line.startswith("event: "):
                    self._event = line[7:]
                else:
                    self.line = number
                    self._field(line)
        finally:
            self.line = number

    def _field(self, line: str) -> None:
        if line[0] == ":":
            return  # comment
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_line = self.line
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self.retry = int(value)
        elif self.strict:
            after = f" in SSE event {self._event!r}" if self._event else ""
            raise StreamError(
                f"malformed SSE line {self.line}{after}: {_excerpt(line)!r} is not an SSE field "
                "(expected 'event:', 'data:', 'id:', 'retry:', a ':' comment or a blank line)",
                event=self._event or None,
                data=line,
            )

    def _dispatch(self) -> Event:
        data = self._data
        count = len(data)
        raw = data[0] if count == 1 else "\n".join(data)
        self._data = []
        name = self._event or "message"
        self._event = ""
        if raw == "[DONE]" or name == "done":
            self.done = True
            return Event("done", raw)
        try:
            value = _loads(raw)
        except ValueError as exc:
            pos = getattr(exc, "pos", 0)
            why = getattr(exc, "msg", str(exc))
            # the data line holding the fault (data lines are almost always consecutive)
            line = self._data_line - count + 1 + raw.count("\n", 0, pos)
            raise StreamError(
                f"invalid JSON in the data of SSE event {name!r} at SSE line {line}: "
                f"{why} at character {pos}: {_excerpt(raw, pos)!r}",
                event=name,
                data=raw,
            ) from None
        if name == "error" or (
            name == "message" and type(value) is dict and type(value.get("error")) is dict
        ):
            raise error_from_event(name, value)
        event = _new_event(Event)
        _set_name(event, name)
        _set_data(event, value)
        return event

    # -- drivers ----------------------------------------------------------------------------

    def iter(self, chunks: Iterable[bytes | str]) -> Iterator[Event]:
        """Events of a sync iterable of chunks; stops after ``done``."""
        for chunk in chunks:
            yield from self.feed(chunk)
            if self.done:
                return
        yield from self.close()

    async def aiter(self, chunks: AsyncIterable[bytes | str]) -> AsyncIterator[Event]:
        """Events of an async iterable of chunks; stops after ``done``."""
        async for chunk in chunks:
            for event in self.feed(chunk):
                yield event
            if self.done:
                return
        for event in self.close():
            yield event


def iter_events(chunks: Iterable[bytes | str], *, strict: bool = True) -> Iterator[Event]:
    """Decode a sync iterable of byte (or str) chunks into events."""
    return SSEDecoder(strict=strict).iter(chunks)


def aiter_events(chunks: AsyncIterable[bytes | str], *, strict: bool = True) -> AsyncIterator[Event]:
    """Decode an async iterable of byte (or str) chunks into events."""
    return SSEDecoder(strict=strict).aiter(chunks)


def decode(body: bytes | str, *, strict: bool = True) -> list[Event]:
    """All events of a complete SSE body (fixtures, tests, recorded streams)."""
    return list(iter_events([body], strict=strict))
