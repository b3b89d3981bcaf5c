"""Python callables <-> function tools: schemas, the allowlist, validation, approval, execution.

``runs.py`` relies on ``ToolRunner.run_async`` / ``run_sync`` returning one :class:`ToolCallRecord`
per tool call, in call order, and never raising (``run_sync`` lets KeyboardInterrupt through,
which the run driver turns into a cancel). After Stop or an interrupt the runner's ``stopped`` is
set: drivers then cancel the run instead of submitting what was cut. ``to_tool_params`` turns callables and tool dicts into the API's tool dicts.

Decisions where the issue is silent:
- A call whose live function no longer has the parameter names or required set declared on the
  run is NOT run: the model is told the tool changed, with its new parameters, because arguments
  shaped for the old signature may mean something else now. Differing types alone (a hand-written
  tool dict with an enum for a ``str`` parameter, say) don't block the call: arguments are
  validated against the live function, and a rejection then says the tool changed.
- Every tool has a timeout (:data:`DEFAULT_TOOL_TIMEOUT`) and can be cut by it, by ``cancel``
  (Stop) and by Kernel › Interrupt; how each kind of call is cut is explained in ``cut.py``. A cut
  call fails with an output that says why, and its late result (if it ever returns) is discarded.
- ``run_async`` (background runs on the kernel's loop) runs a sync tool that has a timeout in a
  worker thread: on the loop's thread it would block the kernel so that Stop could not even be
  read. ``run_sync`` (blocking drivers) keeps sync tools on the caller's thread.
- A tool that returns None but printed gets its printed text as the output (people write tools
  that print), otherwise ``null``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import functools
import inspect
import json
import threading
import time
import traceback as tb
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ToolError
from . import capture as _capture
from . import cut as _cut
from .approval import ApprovalDecision, ApprovalRequest, ask_on_stdin, decision_of
from .encode import cap, encode
from .schema import ToolSpec, allows_none, build_spec, callable_name
from .validate import check_object, convert

__all__ = ["ApprovalDecision", "ApprovalRequest", "DEFAULT_TOOL_TIMEOUT", "Namespace", "ToolCallRecord",
           "ToolRunner", "tool", "tool_param", "tool_spec", "to_tool_params"]

#: Seconds a tool may run before it is cut and the model is told it timed out. A default, because a
#: hung tool otherwise holds its run (and, for sync tools, the kernel) forever.
DEFAULT_TOOL_TIMEOUT = 60.0


class Namespace(Mapping[str, Any]):
    """A namespace that exposes nothing by itself: the user namespace a runner looks the *exposed*
    tools up in at call time, so a redefined function takes effect.

    A plain mapping handed to ``wait(env=...)`` is the user's explicit choice and exposes every
    callable in it. The default namespace (IPython's ``user_ns``) is not: a server (or an assistant
    stored by someone else) declares tool names, and a name found in the notebook because a server
    declared it must never be enough to run it (``from shutil import rmtree`` is in scope).
    """

    __slots__ = ("ns",)

    def __init__(self, ns: Mapping[str, Any]) -> None:
        self.ns = ns.ns if isinstance(ns, Namespace) else ns

    def __getitem__(self, key: str) -> Any:
        return self.ns[key]

    def __iter__(self) -> Any:
        return iter(self.ns)

    def __len__(self) -> int:
        return len(self.ns)


@dataclass
class ToolCallRecord:
    """What happened to one tool call: the output the model gets, and what the user sees."""

    tool_call_id: str
    name: str
    arguments: Any  # the parsed dict, or the raw string when it was not valid JSON
    output: str = ""
    status: str = "completed"  # completed | failed | denied
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    displays: list[dict[str, Any]] = field(default_factory=list)  # mimebundles
    started_at: float | None = None
    ended_at: float | None = None

    def to_output(self) -> dict[str, str]:
        return {"tool_call_id": self.tool_call_id, "output": self.output}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- declaring tools


@dataclass(frozen=True)
class ToolOptions:
    """What ``@tool(...)`` overrides; kept on the function so redefinition keeps no stale copy."""

    name: str | None = None
    description: str | None = None
    strict: bool = False
    thread_safe: bool = False
    timeout: float | None = None


_OPTIONS = "__jupyter_runs_tool__"


def tool(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    thread_safe: bool = False,
    timeout: float | None = None,
) -> Any:
    """Mark a function as a tool with overrides: ``@jr.tool`` or ``@jr.tool(name=..., strict=True)``.

    ``timeout`` overrides the runner's (seconds). ``thread_safe`` is accepted for compatibility and
    no longer changes anything: every call can be cut at its timeout now (see ``cut.py``). The function is returned unchanged apart from an attribute, so it stays an
    ordinary function for the notebook; its schema is checked now so mistakes show at definition.
    """
    options = ToolOptions(name, description, strict, thread_safe, timeout)

    def mark(f: Callable[..., Any]) -> Callable[..., Any]:
        try:
            setattr(f, _OPTIONS, options)
        except (AttributeError, TypeError):  # bound methods, builtins: wrap to carry the options
            wrapped = f

            @functools.wraps(wrapped)
            def f(*args: Any, **kwargs: Any) -> Any:
                return wrapped(*args, **kwargs)

            setattr(f, _OPTIONS, options)
        tool_spec(f)
        return f

    return mark(fn) if fn is not None else mark


def _options(fn: Any) -> ToolOptions:
    return getattr(fn, _OPTIONS, None) or ToolOptions()


def tool_spec(fn: Callable[..., Any], *, strict: bool | None = None) -> ToolSpec:
    """The schema view of ``fn`` (``strict`` overrides its ``@tool`` setting); ToolError if it can't be one."""
    opts = _options(fn)
    if not callable(fn) or isinstance(fn, type) or inspect.ismodule(fn):
        raise ToolError(f"{fn!r} is not a function; only functions can be tools")
    return build_spec(fn, name=opts.name, description=opts.description,
                      strict=opts.strict if strict is None else strict)


def tool_param(obj: Any) -> dict[str, Any]:
    """A tool dict for a callable (schema from its signature) or a tool dict as is."""
    if isinstance(obj, Mapping):
        return dict(obj)
    return tool_spec(obj).to_param()


def to_tool_params(tools: Iterable[Any] | None) -> list[dict[str, Any]]:
    return [tool_param(t) for t in tools or ()]


def _tool_name(fn: Any) -> str:
    return _options(fn).name or callable_name(fn)


def is_exposable(obj: Any) -> bool:
    """Whether ``obj`` may ever be called as a tool: never builtins, modules or classes."""
    while isinstance(obj, functools.partial):  # partial(eval) is still eval
        obj = obj.func
    if obj is None or not callable(obj) or isinstance(obj, type) or inspect.ismodule(obj):
        return False
    if inspect.isbuiltin(obj) or getattr(obj, "__module__", None) == "builtins":
        return False
    name = getattr(obj, "__name__", None)
    return not (isinstance(name, str) and getattr(builtins, name, None) is obj)


def _signature(parameters: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Parameter names and required names: what must agree for declared arguments to fit a call."""
    return sorted(parameters.get("properties") or {}), sorted(parameters.get("required") or ())


def _now(spec: ToolSpec) -> str:
    return f"its parameters are now: {json.dumps(spec.parameters)}"


def _shape(schema: Any) -> Any:
    """The part of a schema that decides which arguments are valid (descriptions dropped)."""
    if isinstance(schema, list):
        return [_shape(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key in ("type", "enum", "items", "prefixItems", "anyOf", "minItems", "maxItems"):
        if key in schema:
            out[key] = _shape(schema[key])
    if "properties" in schema:
        out["properties"] = {k: _shape(v) for k, v in schema["properties"].items()}
        out["required"] = sorted(schema.get("required") or ())
    if isinstance(schema.get("additionalProperties"), dict):
        out["additionalProperties"] = _shape(schema["additionalProperties"])
    if isinstance(out.get("type"), list):
        out["type"] = sorted(out["type"])
    return out


# --------------------------------------------------------------------------- running


@dataclass
class _Prepared:
    """A call that passed the allowlist, validation and approval; ready to execute."""

    record: ToolCallRecord
    fn: Callable[..., Any]
    kwargs: dict[str, Any]
    timeout: float | None
    thread_safe: bool
    is_async: bool


class _Interrupted(Exception):
    """KeyboardInterrupt inside a tool task, carried out of the event loop as an ordinary exception:
    a KeyboardInterrupt escaping a task stops the loop itself (on the portal, for good)."""


async def _gather(coros: list[Awaitable[ToolCallRecord]]) -> list[ToolCallRecord]:
    """All results in order; on an interrupt, cancel the other calls before reporting it."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class _Refused(Exception):
    """A call that will not run; ``output`` tells the model why."""

    def __init__(self, output: str, status: str = "failed") -> None:
        super().__init__(output)
        self.output, self.status = output, status

    def apply(self, rec: ToolCallRecord) -> None:
        rec.status, rec.output = self.status, self.output
        if self.status == "failed":
            rec.error = self.output.removeprefix("error: ")


class ToolRunner:
    """Executes the tool calls of one ``requires_action`` against the callables the user exposed.

    A call runs only if its name is a function tool declared on the run AND the user exposed a
    callable under that name for this run: the functions passed in ``tools=``, or any callable of
    an explicit ``env`` mapping. A :class:`Namespace` ``env`` exposes nothing itself; it is only
    where an exposed tool's current definition is looked up (so a redefined function takes effect).
    ``timeout`` (seconds, ``None`` for none) cuts a tool that runs too long; ``@tool(timeout=)``
    overrides it per tool.
    """

    def __init__(
        self,
        env: Mapping[str, Any] | None = None,
        tools: Iterable[Callable[..., Any]] = (),
        *,
        approve: Any = None,
        approver: Callable[[ApprovalRequest], Any] | None = None,
        timeout: float | None = DEFAULT_TOOL_TIMEOUT,
        max_output: int | None = 16384,
        traceback: bool = False,
        on_record: Callable[[ToolCallRecord], Any] | None = None,
    ) -> None:
        self.env = env if env is not None else {}
        self.tools = {_tool_name(t): t for t in tools if callable(t) and not isinstance(t, Mapping)}
        self.approve = approve
        self.approver = approver
        self.timeout = timeout
        self.max_output = max_output
        self.traceback = traceback
        self.on_record = on_record
        self._changed: dict[str, bool] = {}  # tool name -> live types differ from the declared ones
        #: Why this runner was stopped ("stopped", "interrupted"), or None. A stopped runner runs no
        #: more calls; drivers cancel the run instead of submitting its outputs.
        self.stopped: str | None = None
        self._cuts: set[Callable[[str], None]] = set()
        self._cuts_lock = threading.Lock()

    def cancel(self, reason: str = "stopped") -> None:
        """Cut every tool call running now and run no more (any thread; what Stop does)."""
        with self._cuts_lock:
            self.stopped = self.stopped or reason
            cuts = list(self._cuts)
        for cut in cuts:
            cut(reason)

    def _register_cut(self, cut: Callable[[str], None] | _cut.Cut) -> Callable[[], None]:
        fn = cut.cut if isinstance(cut, _cut.Cut) else cut
        with self._cuts_lock:
            self._cuts.add(fn)
            stopped = self.stopped
        if stopped:
            fn(stopped)
        return lambda: self._cuts.discard(fn)

    # ---- resolution and checks (no user code runs here except approval hooks)

    def _resolve(self, run: Mapping[str, Any], name: str) -> tuple[Callable[..., Any], ToolSpec]:
        declared = {t["function"]["name"]: t["function"] for t in run.get("tools") or ()
                    if isinstance(t, Mapping) and t.get("type") == "function" and t.get("function")}
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise _Refused(f"error: unknown tool {name!r}; the available tools are: {known}")
        if name.startswith("_"):
            raise _Refused(f"error: tool {name!r} is not available (private names are never callable)")
        fn = self._exposed(name)
        if not is_exposable(fn):
            raise _Refused(f"error: tool {name!r} is not available: the user has not exposed a "
                           "function by that name for this run, so it was not run")
        declaration = declared[name]
        try:
            spec = tool_spec(fn, strict=bool(declaration.get("strict")))
        except ToolError as exc:
            raise _Refused(f"error: tool {name!r} can't be called: {exc}") from None
        before = declaration.get("parameters") or {}
        # A declaration without properties (``{"type": "object"}``) promised nothing to check.
        if "properties" in before and _signature(before) != _signature(spec.parameters):
            raise _Refused(f"error: tool {name!r} changed since this run started and was not run; "
                           f"{_now(spec)}")
        self._changed[name] = _shape(before) != _shape(spec.parameters)
        return fn, spec

    def _exposed(self, name: str) -> Any:
        """The callable the user exposed under ``name``, or None."""
        given = self.tools.get(name)
        # A partial or a bound method is never redefined under its name (the name is its
        # function's), so the object passed in tools= is the one to call; a plain function is
        # looked up again so a redefinition takes effect.
        if given is not None and not inspect.isfunction(given):
            return given
        if isinstance(self.env, Namespace):
            if given is None:
                return None
            current = self.env.get(getattr(given, "__name__", None) or "")
            return current if is_exposable(current) and _tool_name(current) == name else given
        fn = self.env.get(name) if isinstance(self.env, Mapping) else None
        return fn if is_exposable(fn) else given

    def _arguments(self, spec: ToolSpec, arguments: Any) -> dict[str, Any]:
        """Validated, coerced keyword arguments; _Refused with every problem otherwise."""
        if not isinstance(arguments, dict):
            raise _Refused(f"error: the arguments of {spec.name!r} must be a JSON object; "
                           f"got {type(arguments).__name__}")
        errors: list[str] = []
        checked = check_object(arguments, spec.parameters, "", errors)
        if errors:
            note = ""
            if self._changed.get(spec.name):
                note = f" (note: the tool changed since this run started; {_now(spec)})"
            raise _Refused(f"error: invalid arguments for {spec.name!r}: " + "; ".join(errors) + note)
        kwargs = {}
        for key, value in checked.items():
            if value is None and key in spec.defaults and spec.strict and not allows_none(spec.hints.get(key)):
                continue  # strict mode sends null for "use the default"
            kwargs[key] = convert(value, spec.hints.get(key))
        return kwargs

    def _needs_approval(self, name: str, arguments: dict[str, Any]) -> bool:
        policy = self.approve
        if policy is None or policy is False or policy == "never":
            return False
        if policy is True or policy == "always":
            return True
        if callable(policy):
            return bool(policy(name, arguments))
        if isinstance(policy, str):
            return name == policy
        return name in policy

    def _start(self, call: Mapping[str, Any]) -> ToolCallRecord:
        part = call.get("function") or {}
        rec = ToolCallRecord(str(call.get("id", "")), str(part.get("name", "")), part.get("arguments"))
        rec.started_at = time.time()
        return rec

    def _parse(self, rec: ToolCallRecord) -> dict[str, Any]:
        raw = rec.arguments
        if isinstance(raw, dict):
            return raw
        try:
            parsed = json.loads(raw) if raw not in (None, "") else {}
        except (TypeError, ValueError) as exc:
            raise _Refused(f"error: the arguments of {rec.name!r} are not valid JSON ({exc}); "
                           "send a JSON object") from None
        rec.arguments = parsed
        return parsed

    def _prepare(self, run: Mapping[str, Any], rec: ToolCallRecord) -> tuple[Callable[..., Any], ToolSpec, dict[str, Any]]:
        if self.stopped:
            raise _Refused(f"error: tool {rec.name!r} was not run: {_cut.REASONS[self.stopped].split(': ', 1)[-1]}"
                           if self.stopped in _cut.REASONS else f"error: tool {rec.name!r} was not run")
        fn, spec = self._resolve(run, rec.name)
        arguments = self._parse(rec)
        return fn, spec, self._arguments(spec, arguments)

    def _afterdecision_of(self, rec: ToolCallRecord, spec: ToolSpec, decision: ApprovalDecision,
                        kwargs: dict[str, Any]) -> dict[str, Any]:
        if not decision.approved:
            why = f": {decision.reason}" if decision.reason else ""
            raise _Refused(f"the user declined to run {rec.name}{why}", status="denied")
        if decision.arguments is not None:
            edited = decision.arguments
            if isinstance(edited, str):  # an approver that hands back the edited JSON text
                rec.arguments = edited
                edited = self._parse(rec)
            rec.arguments = dict(edited) if isinstance(edited, Mapping) else edited
            kwargs = self._arguments(spec, rec.arguments)
        return kwargs

    def _ready(self, rec: ToolCallRecord, fn: Callable[..., Any], kwargs: dict[str, Any]) -> _Prepared:
        opts = _options(fn)
        timeout = opts.timeout if opts.timeout is not None else self.timeout
        is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(vars(type(fn)).get("__call__"))
        return _Prepared(rec, fn, kwargs, timeout, opts.thread_safe, is_async)

    # ---- outcome

    def _fail(self, rec: ToolCallRecord, exc: BaseException) -> None:
        rec.status = "failed"
        rec.error = f"{type(exc).__name__}: {exc}"
        text = f"error: {rec.error}"
        if self.traceback:
            frames = exc.__traceback__.tb_next if exc.__traceback__ else None  # drop the runner's frame
            text += "\n" + "".join(tb.format_exception(type(exc), exc, frames))
        rec.output = cap(text, self.max_output)

    def _timed_out(self, rec: ToolCallRecord, how: str) -> None:
        rec.status = "failed"
        rec.error = f"TimeoutError: {rec.name} {how}"
        rec.output = f"error: tool {rec.name!r} {how}"

    def _was_cut(self, rec: ToolCallRecord, reason: str, timeout: float | None, how: str) -> None:
        if reason == "timeout":
            self._timed_out(rec, f"timed out after {timeout:g} s and was {how}")
            return
        rec.status = "failed"
        rec.error = f"{'KeyboardInterrupt' if reason == 'interrupted' else 'Stopped'}: {rec.name} {_cut.REASONS[reason]}"
        rec.output = f"error: tool {rec.name!r} {_cut.REASONS[reason]}"

    def _finish(self, rec: ToolCallRecord, sink: _capture.Sink | None = None) -> ToolCallRecord:
        if sink is not None:
            rec.stdout = cap(sink.stdout.getvalue(), self.max_output)
            rec.stderr = cap(sink.stderr.getvalue(), self.max_output)
            rec.displays.extend(sink.displays)
        rec.ended_at = time.time()
        if self.on_record is not None:
            try:
                self.on_record(rec)
            except Exception as exc:  # a broken display hook must not lose the outputs
                rec.error = rec.error or f"on_record failed: {type(exc).__name__}: {exc}"
        return rec

    def _encode_result(self, rec: ToolCallRecord, result: Any, sink: _capture.Sink) -> None:
        try:
            if result is None and sink.stdout.getvalue():
                text, displays = cap(sink.stdout.getvalue(), self.max_output), []
            else:
                text, displays = encode(result, self.max_output)
        except Exception as exc:
            self._fail(rec, exc)
            return
        rec.output, rec.displays = text, displays

    # ---- sync

    def run_sync(self, run: Mapping[str, Any], tool_calls: list[Mapping[str, Any]]) -> list[ToolCallRecord]:
        """Run the calls; sync tools on this thread, async ones together on a loop. Call order kept."""
        records: list[ToolCallRecord] = []
        pending_async: list[_Prepared] = []
        with _capture.routing():
            for call in tool_calls:
                rec = self._start(call)
                records.append(rec)
                try:
                    fn, spec, kwargs = self._prepare(run, rec)
                    if self._needs_approval(rec.name, kwargs_json(rec)):
                        request = ApprovalRequest(rec.tool_call_id, rec.name, kwargs_json(rec))
                        decision = decision_of(self._approve_sync(request))
                        kwargs = self._afterdecision_of(rec, spec, decision, kwargs)
                except _Refused as refused:
                    refused.apply(rec)
                    self._finish(rec)
                    continue
                except Exception as exc:  # an approval hook that raised
                    self._fail(rec, exc)
                    self._finish(rec)
                    continue
                prepared = self._ready(rec, fn, kwargs)
                if prepared.is_async:
                    pending_async.append(prepared)
                else:
                    self._execute_sync(prepared)
            if pending_async:
                try:
                    self._run_coroutine(lambda: _gather([self._execute_async(p) for p in pending_async]))
                except _Interrupted:
                    raise KeyboardInterrupt from None
        return records

    def _approve_sync(self, request: ApprovalRequest) -> Any:
        if self.approver is None:
            return ask_on_stdin(request)
        answer = self.approver(request)
        if inspect.isawaitable(answer):
            return self._run_coroutine(lambda: answer)
        return answer

    @staticmethod
    def _run_coroutine(factory: Callable[[], Awaitable[Any]]) -> Any:
        """Await on a private loop, or on the portal when this thread already runs a loop (a
        notebook cell doing a sync wait), where ``asyncio.run`` is not allowed."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            loop = asyncio.new_event_loop()
            try:
                return loop.run_until_complete(_awaited(factory))
            finally:
                loop.close()
        from .. import _portal

        return _portal.call(lambda: _awaited(factory))

    def _execute_sync(self, p: _Prepared) -> None:
        """On this thread, cuttable by its timeout, ``cancel`` and (main thread) Ctrl-C: see _cut."""
        rec, sink = p.record, _capture.Sink()
        with _capture.capture(sink):
            try:
                with _cut.cuttable_here(p.timeout, self._register_cut):
                    result = p.fn(**p.kwargs)
            except _cut.ToolCut as cut:
                self._was_cut(rec, cut.reason, p.timeout, "stopped")
            except (Exception, SystemExit) as exc:
                self._fail(rec, exc)
            else:
                self._encode_result(rec, result, sink)
        self._finish(rec, sink)

    # ---- async

    async def run_async(self, run: Mapping[str, Any], tool_calls: list[Mapping[str, Any]]) -> list[ToolCallRecord]:
        """Run the calls on this loop; async tools concurrently, outputs in call order."""
        with _capture.routing():
            try:
                return await _gather([self._one_async(run, call) for call in tool_calls])
            except _Interrupted:
                raise KeyboardInterrupt from None

    async def _one_async(self, run: Mapping[str, Any], call: Mapping[str, Any]) -> ToolCallRecord:
        rec = self._start(call)
        try:
            return await self._one_async_inner(run, call, rec)
        except KeyboardInterrupt:
            # Never raised out of a task on a running loop (it would stop the loop, the kernel's
            # included): the runner is stopped instead and the driver cancels the run.
            self._was_cut(rec, "interrupted", None, "")
            self.cancel("interrupted")
            return self._finish(rec)

    async def _one_async_inner(self, run: Mapping[str, Any], call: Mapping[str, Any],
                               rec: ToolCallRecord) -> ToolCallRecord:
        try:
            fn, spec, kwargs = self._prepare(run, rec)
            if self._needs_approval(rec.name, kwargs_json(rec)):
                request = ApprovalRequest(rec.tool_call_id, rec.name, kwargs_json(rec))
                if self.approver is None:
                    decision = ApprovalDecision(False, reason=(
                        "no approver is set; pass ToolRunner(approver=...) to approve tool calls "
                        "in async code"))
                else:
                    answer = self.approver(request)
                    decision = decision_of(await answer if inspect.isawaitable(answer) else answer)
                kwargs = self._afterdecision_of(rec, spec, decision, kwargs)
        except _Refused as refused:
            refused.apply(rec)
            return self._finish(rec)
        except Exception as exc:
            self._fail(rec, exc)
            return self._finish(rec)
        prepared = self._ready(rec, fn, kwargs)
        if prepared.is_async:
            await self._execute_async_inner(prepared)
        elif prepared.timeout is not None:
            # In a worker thread, so the loop (the kernel's) stays free: a Stop click is read,
            # the widget updates, and the call can be cut (see cut.py).
            await self._execute_thread(prepared)
        else:  # no limit asked for: on the loop's thread, where user code expects to run
            self._execute_sync(prepared)
        return rec

    async def _execute_thread(self, p: _Prepared) -> None:
        rec, sink = p.record, _capture.Sink()
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[tuple[str, Any]] = loop.create_future()

        def settle(value: tuple[str, Any]) -> None:
            if not outcome.done():
                outcome.set_result(value)

        def report(value: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(settle, value)
            except RuntimeError:  # the loop is gone; nobody waits for this call any more
                pass

        cut = _cut.Cut(0, by_signal=False)
        with _capture.capture(sink):
            ctx = contextvars.copy_context()

            def target() -> None:
                try:
                    try:
                        value: tuple[str, Any] = ("ok", ctx.run(p.fn, **p.kwargs))
                    except _cut.ToolCut as exc:
                        value = ("cut", exc.reason)
                    except BaseException as exc:
                        value = ("error", exc)
                    cut.finish()
                    report(value)
                except _cut.ToolCut:  # a cut that landed just as the tool returned
                    report(("cut", cut.reason or "stopped"))

            def stop(reason: str) -> None:  # any thread
                cut.cut(reason)
                report(("cut", reason))

            thread = threading.Thread(target=target, daemon=True,
                                      name=f"jupyter-runs-tool-{getattr(p.fn, '__name__', 'tool')}")
            thread.start()
            cut.ident = thread.ident or 0
            unregister = self._register_cut(stop)
            timer = loop.call_later(p.timeout, stop, "timeout") if p.timeout is not None else None
            try:
                with _cut.sigint_calls(lambda: self.cancel("interrupted")):
                    kind, value = await outcome
            except asyncio.CancelledError:
                cut.cut("stopped")
                raise
            finally:
                if timer is not None:
                    timer.cancel()
                unregister()
        if kind == "cut":
            self._was_cut(rec, value, p.timeout, "stopped (its thread was abandoned)")
        elif kind == "error":
            if isinstance(value, (Exception, SystemExit)):
                self._fail(rec, value)
            else:
                self._was_cut(rec, "interrupted", None, "")
        else:
            self._encode_result(rec, value, sink)
        self._finish(rec, sink)

    async def _execute_async(self, p: _Prepared) -> None:
        try:
            await self._execute_async_inner(p)
        except KeyboardInterrupt as exc:
            raise _Interrupted from exc

    async def _execute_async_inner(self, p: _Prepared) -> None:
        rec, sink = p.record, _capture.Sink()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        reasons: list[str] = []
        running = [True]

        def cancel_here(reason: str) -> None:  # on the loop
            if running[0] and not reasons and task is not None:
                reasons.append(reason)
                task.cancel()

        def stop(reason: str) -> None:  # any thread
            try:
                loop.call_soon_threadsafe(cancel_here, reason)
            except RuntimeError:
                pass

        # Not asyncio.wait_for: it runs the coroutine in a new task, and a KeyboardInterrupt
        # escaping a task stops the loop.
        timer = loop.call_later(p.timeout, cancel_here, "timeout") if p.timeout is not None else None
        unregister = self._register_cut(stop)
        with _capture.capture(sink):
            try:
                try:
                    result = await p.fn(**p.kwargs)
                finally:
                    running[0] = False
                    if timer is not None:
                        timer.cancel()
                    unregister()
            except asyncio.CancelledError:
                if not reasons:
                    raise
                self._was_cut(rec, reasons[0], p.timeout, "cancelled")
            except (Exception, SystemExit) as exc:
                self._fail(rec, exc)
            else:
                self._encode_result(rec, result, sink)
        self._finish(rec, sink)


def kwargs_json(rec: ToolCallRecord) -> dict[str, Any]:
    """The call's arguments as the model sent them (what approval hooks see)."""
    return dict(rec.arguments) if isinstance(rec.arguments, dict) else {}


async def _awaited(factory: Callable[[], Awaitable[Any]]) -> Any:
    return await factory()
