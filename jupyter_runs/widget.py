"""RunWidget: the live view of one run (anywidget; front end in ``js/``, bundled into ``static/``).

Transport (DESIGN.md "Widget transport"). Traitlets resend their whole value on every change and
Jupyter Server drops iopub messages past 1000/s, so the widget splits what it sends:

- finished structure (run status, messages, steps, tool records, approvals) goes into traitlets,
  only at coarse boundaries (non-delta events, tool records, approvals), inside ``hold_sync()`` so
  one boundary is one comm message; ``meta`` is set last and carries the delta ``seq`` the
  snapshot includes, so a view that (re)joins knows which deltas to ignore;
- text and argument deltas go as custom messages, coalesced per message/step with the fold's own
  ``merge_delta`` and flushed at most ``max_flushes`` times a second (default 30) of the injectable
  ``clock``; each flush is one numbered batch. Deltas still pending at a boundary are dropped, not
  sent: the snapshot already contains them.

Nothing from the client (base URL, API key, headers) ever reaches this object; the run is reduced
to display fields before it enters a trait, and the static output (``static_view``) is built from
the same reduced state.

A finished run outlives its widget: :meth:`finish` replaces the display, by display id, with the
static bundle (no widget mimetype) and closes the comm, so a saved notebook holds no widget state
of ours and a kernel that ran 200 runs holds no 200 live models. ``live=False`` (headless
executors, ``%runs show``) never opens a comm at all.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from . import static_view
from .events import RunState, fold, merge_delta
from .tools.approval import ApprovalDecision
from .wire import TERMINAL_STATUSES, Event

log = logging.getLogger(__name__)

_STATIC = Path(__file__).parent / "static"
_MISSING_ESM = """
export default { render({ el }) {
  el.textContent = "jupyter_runs: the widget front end is not built (run `npm run build` in js/, "
    + "or reinstall the package)";
} };
"""

_RUN_KEYS = ("id", "object", "status", "model", "usage", "last_error", "incomplete_details",
             "created_at", "started_at", "completed_at", "cancelled_at", "failed_at", "expires_at",
             "required_action", "thread_id", "assistant_id")
_MESSAGE_KEYS = ("id", "object", "role", "status", "content", "created_at", "completed_at",
                 "incomplete_details", "run_id")
_STEP_KEYS = ("id", "object", "type", "status", "step_details", "created_at", "completed_at",
              "cancelled_at", "failed_at", "expired_at", "last_error", "usage")
_STEP_END = ("completed", "failed", "cancelled", "expired")
#: Longest tool output / stdout kept in widget state (the full output still goes to the model).
_MAX_TEXT = 65536


def _asset(name: str, fallback: str) -> str:
    """The built file's text. A string, not a Path: for a Path anywidget connects every instance
    to the file's change signal (hot reload), which keeps every widget ever made alive."""
    path = _STATIC / name
    return path.read_text(encoding="utf-8") if path.exists() else fallback


def _pick(obj: Mapping[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if obj is None:
        return None
    # Deep copy: the fold mutates its snapshots in place, and a trait value that changed under
    # traitlets' feet would let a reloaded view see text past the seq it claims to include.
    return copy.deepcopy({k: obj[k] for k in keys if k in obj})


def _clip(text: Any, limit: int = _MAX_TEXT) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit:,} more characters)"


def _field(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


class RunWidget(anywidget.AnyWidget):
    """A live view of one run: reply, step timeline, status, Stop and approval cards.

    ``RunWidget(stream)`` drives a :class:`~jupyter_runs.RunStream` (a background task on the
    running loop, else synchronously); ``RunWidget()`` plus :meth:`feed` shows any event source.
    """

    _esm = _asset("widget.js", _MISSING_ESM)
    _css = _asset("widget.css", "")

    run = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    messages = traitlets.List().tag(sync=True)
    steps = traitlets.List().tag(sync=True)
    records = traitlets.Dict().tag(sync=True)
    approvals = traitlets.List().tag(sync=True)
    prompt = traitlets.Unicode("").tag(sync=True)
    # The --context attachments (context.Attachment.to_dict): chips in the view, a line when saved.
    context = traitlets.List().tag(sync=True)
    #: The user's price table (``RunAssistantMagics.prices``), for the cost in the header.
    prices = traitlets.Dict().tag(sync=True)
    #: seq (last delta batch included), rev, elapsed, step timings, error, done. Set last.
    meta = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        stream: Any = None,
        *,
        env: Mapping[str, Any] | None = None,
        runner: Any = None,
        clock: Callable[[], float] | None = None,
        max_flushes: float = 30.0,
        live: bool = True,
        **kwargs: Any,
    ) -> None:
        # Read by open(), which ipywidgets calls from inside __init__.
        self._live = live
        super().__init__(**kwargs)
        self._clock = clock or time.monotonic
        self._interval = 1.0 / max_flushes
        self._fold = RunState()
        self._t0: float | None = None
        self._wall0: float | None = None
        self._seq = 0
        self._rev = 0
        self._pending: dict[tuple[str, str], dict[str, Any]] = {}
        self._last_flush = -math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timings: dict[str, list[float | None]] = {}
        self._records: dict[str, dict[str, Any]] = {}
        self._approvals: list[dict[str, Any]] = []
        self._answers: dict[str, asyncio.Future[Any]] = {}
        self._stop_callbacks: list[Callable[[], Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._display_id: str | None = None
        self._finished = False
        #: Leave measured durations out of the saved output (a cassette run: replaying a notebook
        #: must write the same bytes, and wall-clock times differ on every run).
        self.timeless = False
        self.stream = stream
        self.task: asyncio.Task[Any] | None = None
        self.on_msg(self._on_front_end_msg)
        self._publish()
        if stream is not None:
            self.drive(stream, env=env, runner=runner)

    # -- driving a RunStream -------------------------------------------------------------------
    def drive(self, stream: Any, *, env: Mapping[str, Any] | None = None, runner: Any = None) -> asyncio.Task[Any] | None:
        """Stream ``stream`` into this widget: as a background task on the running loop (returned,
        and kept on ``self.task``), or to its end right here when no loop runs. Stop cancels it."""
        self.stream = stream
        self.on_stop(stream.cancel_async)
        kwargs = {"on_event": self.feed, "on_tool_call": self.record_tool_call, "runner": runner}
        if env is not None:
            kwargs["env"] = env
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            try:
                stream.until_done(**kwargs)
            except Exception as exc:
                self.fail(exc)
            self.finish()
            return None

        async def drive() -> None:
            try:
                await stream.stream_async(**kwargs)
            except asyncio.CancelledError:
                self.fail("the run's task was cancelled")
                raise
            except Exception as exc:
                self.fail(exc)
            finally:
                self.finish()

        # A strong reference: the loop keeps only weak ones, and a collected task stops mid-run.
        self.task = loop.create_task(drive())
        return self.task

    def fail(self, exc: BaseException | str) -> None:
        """Show a driver error as a failed run, so it is never lost in a log."""
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        log.debug("run widget driver ended with an error: %s", text)
        run = dict(self._fold.run or {})
        if run.get("status") in TERMINAL_STATUSES:
            return
        run["status"] = "failed"
        run["last_error"] = {"code": "server_error", "message": text}
        if "id" not in run:
            # The run never existed (a refused create, a bad option): no event can carry this,
            # since feed() drops run events without an id, so the state is set here.
            self._set_local_status(run)
            return
        self.feed(Event("thread.run.failed", run))

    # -- before the run exists (issue #13: queued runs, failures at creation) ------------------
    def _set_local_status(self, run: dict[str, Any]) -> None:
        self._fold.run = run
        self._publish()

    def set_waiting(self) -> None:
        """Show that this run has not started yet because another run on its thread is going
        (the front end labels status ``waiting`` "Waiting for the previous run")."""
        self._set_local_status({"status": "waiting", "last_error": None})

    def set_cancelled_before_start(self) -> None:
        """Stop was clicked while the run was still waiting: it never started."""
        run = dict(self._fold.run or {})
        if "id" not in run:
            self._set_local_status({"status": "cancelled", "last_error": None})

    # -- input -----------------------------------------------------------------------------------
    def feed(self, event: Event | tuple[str, Any]) -> None:
        """Fold one stream event (a ``wire.Event`` or ``(name, data)``) into the view."""
        name, data = (event.event, event.data) if isinstance(event, Event) else event
        if name.startswith("thread.") and not (isinstance(data, Mapping) and "id" in data):
            # Never raise here: a callback that raises would stop (and cancel) the user's run.
            log.debug("RunWidget ignored a malformed %s event", name)
            return
        now = self._now()
        if name in ("thread.message.delta", "thread.run.step.delta"):
            fold(self._fold, name, data)
            kind = "message" if name == "thread.message.delta" else "step"
            key = (kind, data["id"])
            if kind == "step" and data["id"] not in self._timings:
                self._timings[data["id"]] = [now, None]
            merge_delta(self._pending.setdefault(key, {}), dict(data.get("delta") or {}))
            self._maybe_flush()
            return
        if name == "thread.run.step.created" or name.startswith("thread.run.step."):
            if isinstance(data, Mapping) and "id" in data:
                span = self._timings.setdefault(data["id"], [now, None])
                if data.get("status") in _STEP_END and span[1] is None:
                    span[1] = now
        # Our own copy: the caller (RunStream) folds the same event into its state, and two folds
        # sharing one snapshot dict would apply every later delta to it twice.
        touched = fold(self._fold, name, copy.deepcopy(data))
        if touched is None and name not in ("done", "error"):
            return  # unknown events are passed over, never fatal
        self._publish()

    def set_prompt(self, text: str) -> None:
        """The user's message that started the run (shown first, and in the saved fallback)."""
        self.prompt = str(text)
        self._publish()

    def record_tool_call(self, record: Any) -> None:
        """Attach what running a tool call produced (stdout, displays, timings) to its card."""
        rec = record.to_dict() if hasattr(record, "to_dict") else dict(record)
        wall0 = self._wall0 if self._wall0 is not None else rec.get("started_at")
        entry = {
            "name": rec.get("name"),
            "arguments": rec.get("arguments"),
            "output": _clip(rec.get("output")),
            "status": rec.get("status") or "completed",
            "error": rec.get("error"),
            "stdout": _clip(rec.get("stdout")),
            "stderr": _clip(rec.get("stderr")),
            "displays": list(rec.get("displays") or ()),
        }
        for key in ("started_at", "ended_at"):
            value = rec.get(key)
            entry[key] = None if value is None or wall0 is None else round(value - wall0, 4)
        try:
            json.dumps(entry)
        except (TypeError, ValueError):
            entry["arguments"] = repr(entry["arguments"])
            entry["displays"] = json.loads(json.dumps(entry["displays"], default=str))
        self._records[str(rec.get("tool_call_id"))] = entry
        self._publish()

    async def request_approval(self, request: Any) -> Any:
        """Show an approval card for one tool call and wait for Approve / Deny in the browser.

        ``request`` is the tools module's approval request (or any object / mapping with
        ``tool_call_id``, ``name`` and ``arguments``). Returns a decision with ``approved``,
        ``arguments`` (possibly edited) and ``reason``.
        """
        call_id = str(_field(request, "tool_call_id", "id", "call_id") or f"approval_{len(self._approvals)}")
        arguments = _field(request, "arguments", "args")
        if arguments is None and isinstance(_field(request, "function"), Mapping):
            arguments = request["function"].get("arguments")
        name = _field(request, "name") or (_field(request, "function") or {}).get("name") or "tool"
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {}, default=repr)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers[call_id] = future
        self._approvals = [a for a in self._approvals if a["id"] != call_id]
        self._approvals.append({"id": call_id, "name": str(name), "arguments": arguments, "status": "pending"})
        self._publish()
        try:
            return await future
        finally:
            self._answers.pop(call_id, None)

    def on_stop(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` when Stop is clicked (a coroutine function is scheduled as a task).
        The Stop button shows only once something listens to it."""
        self._stop_callbacks.append(callback)
        self._publish()

    # -- front end messages ---------------------------------------------------------------------
    def _on_front_end_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not isinstance(content, Mapping):
            return
        kind = content.get("type")
        if kind == "stop":
            self.stop()
        elif kind in ("approve", "deny"):
            self._answer(str(content.get("id")), kind == "approve", content.get("arguments"),
                         content.get("reason"))
        elif kind == "sync":
            self._publish()

    def stop(self) -> None:
        """What the Stop button does: run every stop callback once. Approval cards still pending
        are answered "no" once the cancel requests have been made (issue #13), so the tool
        runner returns, sees the run cancelled and the task ends instead of waiting forever."""
        results = []
        for callback in list(self._stop_callbacks):
            try:
                result = callback()
                if inspect.isawaitable(result):
                    results.append(result)
            except Exception:
                log.exception("a RunWidget stop callback failed")
        if not self._answers:
            for result in results:
                self._run_soon(result)
            return
        self._run_soon(self._stop_then_release(results))

    async def _stop_then_release(self, results: list[Any]) -> None:
        for result in results:
            try:
                await result
            except Exception as exc:  # e.g. cancelling a run that just ended
                log.warning("stopping the run failed: %s", exc)
        self._release_approvals("the run was stopped")

    def _release_approvals(self, reason: str) -> None:
        for call_id, future in list(self._answers.items()):
            item = next((a for a in self._approvals if a["id"] == call_id), None)
            if item is not None and item["status"] == "pending":
                item["status"] = "cancelled"
            if not future.done():
                future.set_result(ApprovalDecision(False, None, reason))
        self._publish()

    def _run_soon(self, awaitable: Any) -> None:
        """Run a stop coroutine on the loop that drives the run, even when the click is handled
        on another thread (see ``_answer``)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        target = self.task.get_loop() if self.task is not None else running
        if target is not None and target is not running:
            future = asyncio.run_coroutine_threadsafe(awaitable, target)
            future.add_done_callback(lambda f: f.cancelled() or f.exception() is None
                                     or log.warning("stopping the run failed: %s", f.exception()))
            return
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._stop_done)

    def _stop_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # e.g. cancelling a run that just ended: the run's own events tell the outcome.
            log.warning("stopping the run failed: %s", task.exception())

    def _answer(self, call_id: str, approved: bool, arguments: Any, reason: Any) -> None:
        future = self._answers.get(call_id)
        item = next((a for a in self._approvals if a["id"] == call_id), None)
        if future is None or future.done() or item is None:
            return
        parsed: Any = None
        if approved:
            try:
                parsed = json.loads(arguments) if isinstance(arguments, str) else json.loads(item["arguments"])
            except (TypeError, ValueError):
                approved, reason = False, "the edited arguments were not valid JSON"
        item["status"] = "approved" if approved else "denied"
        if approved and isinstance(arguments, str):
            item["arguments"] = arguments
        self._publish()
        fields = {"approved": approved, "arguments": parsed,
                  "reason": None if approved else str(reason or "denied by the user")}
        decision = ApprovalDecision(**fields)
        # The click may be handled off the loop that awaits it (ipykernel 7 can dispatch comm
        # messages from another thread); a plain set_result would then not wake that loop.
        def settle() -> None:
            if not future.done():
                future.set_result(decision)

        loop = future.get_loop()
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            settle()
        else:
            loop.call_soon_threadsafe(settle)

    # -- output ------------------------------------------------------------------------------------
    def _now(self) -> float:
        now = self._clock()
        if self._t0 is None:
            self._t0, self._wall0 = now, time.time()
        return now - self._t0

    def _maybe_flush(self) -> None:
        now = self._clock()
        if now - self._last_flush >= self._interval:
            self._flush(now)
        elif self._timer is None:
            self._schedule(self._interval - (now - self._last_flush))

    def _schedule(self, delay: float) -> None:
        # The trailing batch of a burst must not wait for the next event, which may never come.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a sync driver): the next event or finish() flushes
        self._timer = loop.call_later(max(delay, 0.001), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._pending:
            return
        now = self._clock()
        if now - self._last_flush >= self._interval:
            self._flush(now)
        else:
            self._schedule(self._interval)

    def _flush(self, now: float | None = None) -> None:
        if not self._pending:
            return
        self._seq += 1
        deltas = [{"kind": k, "id": i, "delta": d} for (k, i), d in self._pending.items()]
        self._pending = {}
        self._last_flush = self._clock() if now is None else now
        self.send({"type": "deltas", "seq": self._seq, "t": round(self._now(), 3), "deltas": deltas})

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _publish(self) -> None:
        """A coarse boundary: the whole reduced state into the traits, in one comm message."""
        # Pending deltas are already folded into the state being published; sending them too
        # would only duplicate bytes, so they are dropped and seq stays at the last sent batch.
        self._pending = {}
        self._cancel_timer()
        self._rev += 1
        state = self._fold
        with self.hold_sync():
            self.run = _pick(state.run, _RUN_KEYS)
            self.messages = [_pick(m, _MESSAGE_KEYS) for m in state.messages.values()]
            self.steps = [_pick(s, _STEP_KEYS) for s in state.steps.values()]
            self.records = copy.deepcopy(self._records)
            self.approvals = copy.deepcopy(self._approvals)
            self.meta = {
                "seq": self._seq,
                "rev": self._rev,
                "elapsed": self._elapsed(),
                "timings": self._timings_for_view(),
                "error": _pick(state.error, ("message", "code", "type", "error")),
                "done": state.done,
                "stoppable": bool(self._stop_callbacks),
            }

    def _replayed_duration(self) -> float | None:
        """The stored duration of a run that arrived all at once (``%runs show``, ``--poll``),
        whose arrival times here say nothing; ``None`` for a run watched live."""
        run = self._fold.run or {}
        t0 = run.get("created_at")
        ends = [run[k] for k in ("completed_at", "cancelled_at", "failed_at") if isinstance(run.get(k), (int, float))]
        if not isinstance(t0, (int, float)) or not ends:
            return None
        wire_total = max(ends) - t0
        live_total = self._now() if self._t0 is not None else 0.0
        return wire_total if wire_total >= 2 and live_total < 0.1 * wire_total else None

    def _elapsed(self) -> float:
        replayed = self._replayed_duration()
        if replayed is not None:
            return float(replayed)
        return round(self._now(), 3) if self._t0 is not None else 0.0

    def _timings_for_view(self) -> dict[str, list[float | None]]:
        """Step spans in seconds since the run began: arrival times for a live run, the stored
        timestamps (whole seconds) for a replayed one."""
        live = {k: [round(a, 3) if a is not None else None for a in v] for k, v in self._timings.items()}
        if self._replayed_duration() is None:
            return live
        t0 = (self._fold.run or {})["created_at"]
        out = {}
        for sid, step in self._fold.steps.items():
            start = step.get("created_at")
            end = next((step[k] for k in ("completed_at", "failed_at", "cancelled_at", "expired_at") if step.get(k)), None)
            if isinstance(start, (int, float)):
                out[sid] = [start - t0, end - t0 if isinstance(end, (int, float)) else None]
        return out or live

    #: Replace the display by the static view and close the widget when the run ends; None: yes,
    #: except in Voila (frontend.in_voila), whose page is live and never saved and whose
    #: server-side executor does not apply a display update to a cell that has already run, so a
    #: closed widget would leave "model not found" behind.
    swap_when_done: bool | None = None

    def finish(self) -> None:
        """The run is over: final flush, the display replaced by the static view (by display id),
        and the live widget closed."""
        self._cancel_timer()
        if self._fold.run is not None:
            run = self._fold.run
            for span in self._timings.values():
                if span[1] is None and run.get("status") in TERMINAL_STATUSES:
                    span[1] = self._now()
        self._publish()
        self._finished = True
        swap = self.swap_when_done
        if swap is None:
            from .frontend import in_voila

            swap = not in_voila()
        if not swap:
            return  # Voila: an app page, never saved, whose executor drops late display updates
        if self._display_id is not None:
            from IPython.display import update_display

            data, metadata = self._bundle()
            _as_latest_request(lambda: update_display(
                data, metadata=metadata, raw=True, display_id=self._display_id))
        # After the update, never before: a front end that saw the close first would drop the
        # view and show nothing until the static output arrives.
        self.close()

    # -- the comm ----------------------------------------------------------------------------------
    def open(self) -> None:
        if getattr(self, "_live", True):
            super().open()

    def close(self) -> None:
        # DOMWidget's Layout is a widget model of its own: left open, every finished run would
        # still hold one live model in the kernel and the front end.
        layout = self._trait_values.get("layout")
        super().close()
        if layout is not None:
            layout.close()
        # ipywidgets' close() hides _repr_mimebundle_ with None; a closed run still displays.
        self.__dict__.pop("_repr_mimebundle_", None)

    def get_state(self, key: Any = None, drop_defaults: bool = False) -> dict[str, Any]:
        # A closed run's Layout is closed too: it has no model id left to serialize.
        if key is None and self.comm is None:
            key = [k for k in self.keys if k != "layout"]
        return super().get_state(key=key, drop_defaults=drop_defaults)

    @property
    def live(self) -> bool:
        """Whether a front end can still show this widget live (a comm is open)."""
        return self.comm is not None

    # -- display -----------------------------------------------------------------------------------
    def show(self) -> None:
        """Display the run with a display id, so :meth:`finish` can replace it by the static view."""
        from IPython.display import display

        if self._display_id is None:
            self._display_id = f"jupyter-runs-{uuid.uuid4().hex}"
        data, metadata = self._bundle()
        display(data, metadata=metadata, raw=True, display_id=self._display_id)

    def _ipython_display_(self) -> None:
        self.show()

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        return self._bundle(**kwargs)

    def _bundle(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """The live widget view plus text fallbacks while the run goes; the static view after."""
        state = self.view_state()
        if self._finished or self.comm is None:
            return static_view.bundle(state), {}
        bundle = anywidget.AnyWidget._repr_mimebundle_(self, **kwargs)
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle or {}, {})
        data = dict(data)
        data["text/plain"] = static_view.to_text(state)
        data["text/markdown"] = static_view.to_markdown(state)
        return data, dict(metadata or {})

    # -- the static view ---------------------------------------------------------------------------
    def view_state(self) -> static_view.ViewState:
        """The reduced state the front end renders (the synced traits), for ``static_view``."""
        return {"run": self.run, "messages": self.messages, "steps": self.steps, "records": self.records,
                "approvals": self.approvals, "prompt": self.prompt, "meta": self.meta,
                "context": self.context, "prices": self.prices, "timeless": self.timeless}

    def to_text(self) -> str:
        """The plain-text fallback: prompt, reply, steps, final status."""
        return static_view.to_text(self.view_state())

    def to_markdown(self) -> str:
        """The markdown fallback: literal text whatever the model wrote."""
        return static_view.to_markdown(self.view_state())

    def to_html(self) -> str:
        """The static view: sanitized, self-contained HTML that looks like the live view."""
        return static_view.to_html(self.view_state())


def _as_latest_request(publish: Callable[[], Any]) -> None:
    """Publish as a reply to the kernel's *latest* request rather than the cell that started the run.

    A background task keeps the context (and so the parent header) of the cell that created it.
    Front ends route ``update_display_data`` by display id whatever its parent, but headless
    executors (nbclient, nbconvert, papermill) only read messages of the cell they are running, so
    an update parented to an old cell would never reach the saved notebook. ipykernel keeps the
    latest header on its display publisher; we borrow it in a copied context, and fall back to a
    plain publish on kernels without it.
    """
    import contextvars

    try:
        from IPython import get_ipython

        pub = get_ipython().display_pub
        latest, var = pub._parent_header_global, pub._parent_header
    except Exception:
        publish()
        return

    def run() -> None:
        var.set(latest)
        publish()

    contextvars.copy_context().run(run)


__all__ = ["ApprovalDecision", "RunWidget"]

