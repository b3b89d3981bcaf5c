"""Record and replay model calls: a cassette of requests and the model events that answered them.

Why at the model layer: the embedded engine, the magic and the served engine all reach models
through :class:`~.models.ModelAdapter`, so wrapping the adapter gives every path the same replay,
and everything above it (run steps, tool calls, the widget) runs for real against recorded answers.

A cassette is a text file of JSON lines, one recorded model request a line, keys sorted, so it
diffs well and is safe to commit: a line holds the request's canonical form (model id, messages,
tools and the parameters that change an answer; never headers, keys or base URLs) and the stream of
model events with the milliseconds before each. Tool-call ids in the request are renumbered in
order of appearance, because ids that the engine or a model minted at random must not make two
identical conversations look different.

Modes: ``off``; ``record`` (always call the model, save the answer, replacing an earlier line with
the same key); ``replay`` (never touch the network: a miss is a :class:`CassetteMiss` that names
the nearest recorded request and how this one differs); ``auto`` (replay a hit, else call and
record).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from ....errors import ModelError
from . import base as _base
from .base import ModelAdapter, ModelEvent, ModelRequest

MODES = ("off", "record", "replay", "auto")
#: The longest pause replay keeps between two events: a recording made over a slow network
#: should not make a replayed notebook crawl.
MAX_GAP = 2.0


class CassetteMiss(ModelError):
    """Replay found no recorded answer for a request."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_prompt")


def check_mode(mode: str) -> str:
    mode = (mode or "off").strip().lower()
    if mode not in MODES:
        raise ValueError(f"cassette mode must be one of {', '.join(MODES)}; got {mode!r}")
    return mode


# -- the canonical request ---------------------------------------------------------------------

def canonical_request(model_id: str, request: ModelRequest) -> dict[str, Any]:
    """What decides a model's answer, in a stable form: the full model id, the conversation
    (tool-call ids renumbered), tools and sampling parameters. Run ids and call indexes are left
    out: they differ on every run and change nothing the model sees."""
    ids: dict[str, str] = {}

    def renumber(call_id: Any) -> Any:
        if not isinstance(call_id, str):
            return call_id
        return ids.setdefault(call_id, f"call_{len(ids)}")

    messages = []
    for message in request.messages:
        message = dict(message)
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {**call, "id": renumber(call.get("id"))} for call in message["tool_calls"]
            ]
        if "tool_call_id" in message:
            message["tool_call_id"] = renumber(message["tool_call_id"])
        messages.append(message)
    out: dict[str, Any] = {"model": model_id, "messages": messages}
    for name in ("tools", "tool_choice", "parallel_tool_calls", "temperature", "top_p",
                 "max_tokens", "response_format"):
        value = getattr(request, name)
        if value not in (None, []):
            out[name] = value
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def request_key(canonical: dict[str, Any]) -> str:
    return hashlib.sha256(_dumps(canonical).encode("utf-8")).hexdigest()[:24]


# -- model events as JSON ------------------------------------------------------------------------

def _event_types() -> dict[str, type]:
    """Every dataclass model event ``base`` defines, by class name; read each time so
    event types added there are recorded without a change here."""
    return {
        name: cls for name, cls in vars(_base).items()
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls is not ModelRequest
    }


def encode_event(event: ModelEvent) -> list[Any]:
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}  # type: ignore[arg-type]
    return [type(event).__name__, {k: v for k, v in fields.items() if v is not None}]


def decode_event(item: list[Any]) -> ModelEvent:
    name, fields = item
    cls = _event_types().get(name)
    if cls is None:
        raise ModelError(f"cassette: unknown model event {name!r} (recorded by a newer version?)",
                         code="invalid_prompt")
    return cls(**fields)


# -- the file --------------------------------------------------------------------------------------

class Cassette:
    """A cassette file, loaded once and written back whole on each new recording (atomically, so
    an interrupted write never leaves half a line)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r})"

    def entries(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            if self._entries is None:
                self._entries = self._read()
            return self._entries

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        out: dict[str, dict[str, Any]] = {}
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                out[entry["key"]] = entry
            except (ValueError, KeyError, TypeError):
                raise ModelError(f"cassette {self.path}: line {n} is not a recorded request",
                                 code="invalid_prompt") from None
        return out

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries().get(key)

    def put(self, entry: dict[str, Any]) -> None:
        entries = self.entries()
        with self._lock:
            entries[entry["key"]] = entry  # a re-recording keeps its line's place
            text = "".join(_dumps(e) + "\n" for e in entries.values())
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self.path)

    def nearest(self, canonical: dict[str, Any]) -> str:
        """How ``canonical`` differs from the most similar recorded request, in words."""
        best: tuple[int, dict[str, Any]] | None = None
        for entry in self.entries().values():
            recorded = entry.get("request") or {}
            same = _common_prefix(recorded.get("messages") or [], canonical["messages"])
            if best is None or same > best[0]:
                best = (same, recorded)
        if best is None:
            return f"the cassette {self.path} has no recorded requests"
        same, recorded = best
        if recorded.get("model") != canonical["model"]:
            return f"the model changed: recorded {recorded.get('model')!r}, now {canonical['model']!r}"
        old, new = recorded.get("messages") or [], canonical["messages"]
        if same < len(new):
            was = _quote(old[same]) if same < len(old) else "(nothing)"
            return (f"message {same + 1} ({new[same].get('role')}) changed: recorded {was}, "
                    f"now {_quote(new[same])}")
        if same < len(old):
            return f"the conversation is shorter than recorded ({len(new)} vs {len(old)} messages)"
        for name in sorted(set(recorded) | set(canonical)):
            if recorded.get(name) != canonical.get(name):
                return f"{name!r} changed: recorded {recorded.get(name)!r}, now {canonical.get(name)!r}"
        return "the request differs in a way the cassette cannot name"


def _common_prefix(a: list[Any], b: list[Any]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _quote(message: dict[str, Any], limit: int = 80) -> str:
    content = message.get("content")
    if not isinstance(content, str):
        content = _dumps(content if content is not None else message.get("tool_calls"))
    text = " ".join(content.split())
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


# -- the adapter ------------------------------------------------------------------------------------

class CassetteModel:
    """A :class:`ModelAdapter` that answers from a cassette and records into it.

    ``make_inner`` builds the real adapter on first need only, so ``replay`` never constructs one
    (no network client, no API key looked up).
    """

    def __init__(self, model_id: str, make_inner: Callable[[], ModelAdapter], cassette: Cassette,
                 mode: str, *, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        self.model_id = model_id
        self.mode = check_mode(mode)
        self.cassette = cassette
        self._make_inner = make_inner
        self._inner: ModelAdapter | None = None
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"CassetteModel({self.model_id!r}, {self.mode}, {self.cassette!r})"

    @property
    def inner(self) -> ModelAdapter:
        if self._inner is None:
            self._inner = self._make_inner()
        return self._inner

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        canonical = canonical_request(self.model_id, request)
        key = request_key(canonical)
        entry = self.cassette.get(key) if self.mode in ("replay", "auto") else None
        if entry is not None:
            for item in entry["events"]:
                gap = min(float(item[0]) / 1000.0, MAX_GAP)
                if gap > 0:
                    await self._sleep(gap)
                yield decode_event(item[1:])
            return
        if self.mode == "replay":
            last_user = next((m for m in reversed(canonical["messages"]) if m.get("role") == "user"), None)
            about = f" (the prompt {_quote(last_user)})" if last_user else ""
            raise CassetteMiss(
                f"cassette replay: no recorded model call matches this request{about}: "
                f"{self.cassette.nearest(canonical)}. Record it with cassette mode 'record' or "
                "'auto' (this needs the model)."
            )
        events: list[list[Any]] = []
        loop = asyncio.get_running_loop()
        last = loop.time()
        async for event in self.inner.stream(request):
            now = loop.time()
            events.append([round((now - last) * 1000), *encode_event(event)])
            last = now
            yield event
        # Reached only when the call ran to its end: one cut short (Stop, an error) is never
        # recorded as the answer.
        self.cassette.put({"key": key, "request": canonical, "events": events})

    async def aclose(self) -> None:
        return None  # the inner adapter belongs to whoever made it (the engine closes its own)


def default_cassette_path(notebook: str | None, cwd: str | os.PathLike[str] | None = None) -> Path:
    """``NAME.cassette.jsonl`` beside the notebook ``NAME.ipynb``, else ``jupyter_runs.cassette.jsonl``
    in the working directory (a kernel's working directory is its notebook's folder)."""
    base = Path(cwd or os.getcwd())
    if notebook:
        name = Path(notebook).name
        stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else name
        return base / f"{stem}.cassette.jsonl"
    return base / "jupyter_runs.cassette.jsonl"


__all__ = ["MODES", "Cassette", "CassetteMiss", "CassetteModel", "canonical_request",
           "check_mode", "default_cassette_path", "request_key"]
