"""``%%run_assistant`` and ``%runs``: the IPython surface.

The magic body stays thin: parse options, resolve the thread, assistant and tools from the user
namespace, start the run, display its widget. With a widget front end attached (JupyterLab,
Notebook 7, VS Code) the run streams as a task on the kernel's event loop and the cell returns at
once, so the kernel is idle while text arrives: that is what lets the widget's Stop and Approve
clicks reach the kernel, and tool calls still execute on the kernel's main thread (the loop's
thread) between cells. Headless (nbconvert ``--execute``, papermill, nbclient: no widget manager,
and ``allow_stdin`` false) each run ends before its cell returns, so the saved notebook records
it; ``--wait`` / ``--background`` override (the rule: ``frontend.py``). A finished run's output is
a static view (``static_view.py``) that needs no kernel or widget manager.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import Markdown, display
from traitlets import Bool, Int, Unicode
from traitlets.config import Configurable

from .errors import RunError

_NO_MODEL = """No model is configured for %%run_assistant. Pick one:
  %config RunAssistantMagics.model = "openai:gpt-4.1-mini"   (with OPENAI_API_KEY set)
  %config RunAssistantMagics.model = "ollama:llama3.2"       (a local Ollama)
  %%run_assistant -m scripted:examples/demo.json             (offline, deterministic)
or set the environment variable JUPYTER_RUNS_MODEL before starting Jupyter."""

_NAME_KEY = "jupyter_runs_name"
_ASSISTANT_KEY = "jupyter_runs_key"
_PROMPT_KEY = "jupyter_runs_prompt"


def _mask(value: str) -> str:
    return "" if not value else "****" + value[-4:] if len(value) > 12 else "****"


@magics_class
class RunAssistantMagics(Magics, Configurable):
    """Settings for ``%%run_assistant`` (``%config RunAssistantMagics.model = ...``,
    ``c.RunAssistantMagics.model = ...`` in ``ipython_config.py``)."""

    model = Unicode(
        "", help="Default model id, e.g. openai:gpt-4.1-mini, ollama:llama3.2, scripted:demo.json "
        "(else $JUPYTER_RUNS_MODEL; else openai:gpt-4.1-mini when OPENAI_API_KEY is set)."
    ).tag(config=True)
    instructions = Unicode("", help="Default instructions for assistants the magic creates.").tag(config=True)
    store = Unicode(
        "", help="SQLite file of the embedded engine (else $JUPYTER_RUNS_STORE, else one file under "
        "the Jupyter data dir); ':memory:' keeps nothing."
    ).tag(config=True)
    base_url = Unicode("", help="A remote Assistants server (http://host:port/v1) instead of the embedded engine.").tag(config=True)
    api_key = Unicode("", help="Bearer key for base_url (else $JUPYTER_RUNS_API_KEY). Never shown.").tag(config=True)
    model_base_url = Unicode("", help="base_url for compat: models (vLLM, llama.cpp, LM Studio...).").tag(config=True)
    default_thread = Unicode(
        "", help="Thread used when -t is not given; empty: one thread per notebook file."
    ).tag(config=True)
    approve = Unicode("", help="Tools that need approval before they run: comma-separated names, or * for all.").tag(config=True)
    wait = Bool(
        None, allow_none=True,
        help="Block the cell until the run ends: True always, False never; unset (the default): only "
        "when no widget front end is attached (nbconvert, papermill, nbclient), see frontend.py.",
    ).tag(config=True)
    max_tool_output = Int(16384, help="Cap, in bytes, on each tool output sent to the model.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        if shell is not None:
            self.config = shell.config
            self.update_config(shell.config)
        self._clients: dict[tuple[str, str], Any] = {}
        self._threads: dict[tuple[Any, str], str] = {}
        self._assistants: dict[tuple[Any, str], str] = {}
        self._active: dict[str, Any] = {}  # thread id -> RunStream / Run still going
        self._tasks: set[asyncio.Task[Any]] = set()  # strong refs: a dropped task stops mid-run

    # -- settings -------------------------------------------------------------------------------
    def _model(self, args: Any) -> str:
        model = args.model or self.model or os.environ.get("JUPYTER_RUNS_MODEL", "")
        if not model and os.environ.get("OPENAI_API_KEY"):
            model = "openai:gpt-4.1-mini"
        if not model:
            raise UsageError(_NO_MODEL)
        return model

    def _client(self, base_url: str | None) -> Any:
        from .client import AsyncClient

        base_url = base_url or self.base_url or None
        store = self.store or os.environ.get("JUPYTER_RUNS_STORE") or None
        key = ("remote", base_url) if base_url else ("local", store or "")
        if key not in self._clients:
            if base_url:
                api_key = self.api_key or os.environ.get("JUPYTER_RUNS_API_KEY") or None
                self._clients[key] = AsyncClient(base_url, api_key)
            else:
                config = {"base_url": self.model_base_url} if self.model_base_url else {}
                self._clients[key] = AsyncClient(store=store, model_config=config)
        return self._clients[key]

    def _default_thread_name(self) -> str:
        if self.default_thread:
            return self.default_thread
        ns = self.shell.user_ns
        path = ns.get("__vsc_ipynb_file__") or ns.get("__session__")
        if isinstance(path, str) and path:
            return f"notebook:{path}"
        # No notebook path (a console, nbclient): one thread for this kernel session.
        return f"session:{id(self.shell):x}:{os.getpid()}"

    # -- resolution (all async: they run on the kernel loop or the portal) ----------------------
    async def _thread_id(self, client: Any, name: str, new: bool) -> str:
        key = (id(client), name)
        if not new and key in self._threads:
            return self._threads[key]
        thread_id = None
        if not new:
            async for thread in client.threads.list(order="desc"):
                if (thread.get("metadata") or {}).get(_NAME_KEY) == name:
                    thread_id = thread["id"]
                    break
        if thread_id is None:
            thread_id = (await client.threads.create(metadata={_NAME_KEY: name[:512]}))["id"]
        self._threads[key] = thread_id
        return thread_id

    async def _assistant_id(self, client: Any, model: str, instructions: str, tools: list[dict[str, Any]]) -> str:
        digest = hashlib.sha256(
            json.dumps([model, instructions, tools], sort_keys=True).encode()
        ).hexdigest()[:32]
        key = (id(client), digest)
        if key in self._assistants:
            return self._assistants[key]
        found = None
        async for asst in client.assistants.list(order="desc"):
            if (asst.get("metadata") or {}).get(_ASSISTANT_KEY) == digest:
                found = asst["id"]
                break
        if found is None:
            asst = await client.assistants.create(
                model=model, instructions=instructions or None, tools=tools,
                name="%%run_assistant", metadata={_ASSISTANT_KEY: digest},
            )
            found = asst["id"]
        self._assistants[key] = found
        return found

    def _tools(self, spec: str | None) -> list[Callable[..., Any]]:
        if not spec:
            return []
        found = []
        for name in (n.strip() for n in spec.split(",")):
            if not name:
                continue
            fn = self.shell.user_ns.get(name)
            if fn is None:
                raise UsageError(f"--tools: no function named {name!r} in the notebook")
            if not callable(fn) or isinstance(fn, type) or name.startswith("_"):
                raise UsageError(f"--tools: {name!r} is not a function that can be a tool")
            found.append(fn)
        return found

    def _approve(self, option: str | None) -> Any:
        spec = option if option is not None else self.approve
        if not spec:
            return None
        if spec.strip() == "*":
            return "always"
        return {n.strip() for n in spec.split(",") if n.strip()}

    # -- the magics -----------------------------------------------------------------------------
    @magic_arguments()
    @argument("-t", "--thread", help="Named thread, created on first use and kept in the store.")
    @argument("--new-thread", action="store_true", help="Start the thread over (a new thread under that name).")
    @argument("-a", "--assistant", help="A variable holding an assistant, or an assistant id.")
    @argument("-m", "--model", help="Model id, e.g. openai:gpt-4.1-mini, ollama:llama3.2, scripted:demo.json.")
    @argument("-i", "--instructions", help="Instructions for the assistant.")
    @argument("--tools", help="Comma-separated notebook functions the assistant may call.")
    @argument("--approve", nargs="?", const="*", default=None,
              help="Ask before running these tools (comma-separated; all when no names are given).")
    @argument("--wait", action="store_true", default=None, help="Block until the run ends.")
    @argument("--background", dest="wait", action="store_false",
              help="Stream in the background (the default when a widget front end is attached).")
    @argument("-o", "--out", help="Store the run handle (a RunStream) in this variable.")
    @argument("--poll", action="store_true", help="Poll instead of streaming.")
    @argument("--temperature", type=float, help="Sampling temperature.")
    @argument("--max-tokens", type=int, help="max_completion_tokens of the run.")
    @argument("--base-url", help="A remote Assistants server for this run.")
    @line_cell_magic
    def run_assistant(self, line: str, cell: str | None = None) -> Any:
        """Start an assistant run on a thread: the cell body is the user message (line form:
        ``%run_assistant [options] MESSAGE``). The reply streams into a live widget, and the
        assistant's tool calls run the notebook functions named in --tools. With no widget front
        end attached (nbconvert --execute, papermill, nbclient) the cell blocks until the run
        ends, so the saved notebook records it; --wait / --background override. A finished run
        is shown as a static view that needs no kernel."""
        if cell is None:
            line, message = _split_line(line)
        else:
            message = cell
        try:
            args = parse_argstring(self.run_assistant, line)
        except UsageError:
            raise
        except (SystemExit, ValueError) as exc:  # argparse exits; shlex rejects open quotes
            raise UsageError(f"%%run_assistant: {exc}") from None
        message = message.strip()
        if not message:
            raise UsageError("%%run_assistant needs a message: write it in the cell body")
        return self._start(args, message)

    def _start(self, args: Any, message: str) -> Any:
        from .tools import ToolRunner, to_tool_params
        from .widget import RunWidget

        client = self._client(args.base_url)
        tools = self._tools(args.tools)
        # -- #10: headless executors record each run before the next cell (rule in frontend.py) --
        from .frontend import widget_frontend_attached

        attached = widget_frontend_attached(self.shell)
        wait = self.wait if args.wait is None else args.wait
        if wait is None:
            wait = not attached
        # -- end #10 --
        loop = _running_loop()
        if loop is None or "google.colab" in sys.modules:
            wait = True
        assistant_ref = args.assistant
        model = None if assistant_ref else self._model(args)
        thread_name = args.thread or self._default_thread_name()

        widget = RunWidget(live=attached)  # #10: no comm (no saved widget state) when headless
        widget.set_prompt(message)
        runner = ToolRunner(
            env=self.shell.user_ns, tools=tools, approve=self._approve(args.approve),
            # A blocked cell cannot receive clicks, so --wait asks on stdin (the runner's default).
            approver=None if wait else widget.request_approval, max_output=self.max_tool_output,
            # Streams report records through on_tool_call; polled runs only through the runner.
            on_record=widget.record_tool_call if args.poll else None,
        )

        async def prepare() -> tuple[str, Any]:
            thread_id = await self._thread_id(client, thread_name, args.new_thread)
            busy = self._active.get(thread_id)
            if busy is not None and not _finished(busy):
                raise UsageError(
                    f"thread {thread_name!r} already has a run going ({busy.data.get('id') or 'starting'}); "
                    "stop it with its Stop button or wait for it (`await RUN.wait_async()`), "
                    "or use another thread with -t NAME."
                )
            if assistant_ref:
                assistant_id = self._resolve_assistant(assistant_ref)
            else:
                instructions = args.instructions if args.instructions is not None else self.instructions
                assistant_id = await self._assistant_id(client, model, instructions, to_tool_params(tools))
            prompt = await client.messages.create(thread_id, role="user", content=message)
            params: dict[str, Any] = {
                k: v for k, v in (("temperature", args.temperature), ("max_completion_tokens", args.max_tokens))
                if v is not None
            }
            # Remembered so `%runs show` can pair each run with the prompt that started it.
            params["metadata"] = {_PROMPT_KEY: prompt["id"]}
            if tools:
                params["tools"] = tools
            run = await client.runs.create(thread_id, assistant_id=assistant_id, stream=not args.poll, **params)
            self._active[thread_id] = run
            return thread_id, run

        from . import _portal

        try:
            thread_id, run = _portal.call(prepare)
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(f"%%run_assistant could not start the run: {exc}") from None
        if args.out:
            self.shell.user_ns[args.out] = run
        widget.show()

        if wait:
            try:
                self._drive_sync(run, widget, runner, args.poll)
            finally:
                self._active.pop(thread_id, None)
            return None
        if args.poll:
            widget.on_stop(run.cancel_async)
            task = loop.create_task(self._poll_async(run, widget, runner))
        else:
            task = widget.drive(run, env=self.shell.user_ns, runner=runner)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if self._active.get(thread_id) is run:
                self._active.pop(thread_id, None)

        task.add_done_callback(done)
        return None

    def _resolve_assistant(self, ref: str) -> str:
        value = self.shell.user_ns.get(ref, ref)
        if isinstance(value, Mapping) and "id" in value:
            return value["id"]
        if isinstance(value, str):
            return value
        raise UsageError(f"-a {ref}: not an assistant or an assistant id")

    async def _poll_async(self, run: Any, widget: Any, runner: Any) -> None:
        """The background task of ``--poll``. Errors end up in the widget (status failed, with
        the message), never in a log nobody reads."""
        try:
            await _poll_into(run, widget, runner)
        except asyncio.CancelledError:
            widget.fail("the run's task was cancelled")
            raise
        except Exception as exc:
            widget.fail(exc)
        finally:
            widget.finish()

    def _drive_sync(self, run: Any, widget: Any, runner: Any, poll: bool) -> None:
        """``--wait``: block the cell; tool calls run here, on the kernel's main thread. Ctrl-C
        (a kernel interrupt) cancels the run."""
        from . import _portal

        try:
            if poll:
                try:
                    run.wait(runner=runner)
                except RunError:
                    pass  # the final state is shown below
                for event in _portal.call(lambda: _stored_events(run)):
                    widget.feed(event)
            else:
                run.until_done(on_event=widget.feed, on_tool_call=widget.record_tool_call, runner=runner)
        except KeyboardInterrupt:
            # The driver cancelled the run; show its stored end state rather than a guess.
            try:
                for event in _portal.call(lambda: _stored_events(run)):
                    widget.feed(event)
            except Exception:
                widget.fail("interrupted")
            raise
        except Exception as exc:
            widget.fail(exc)
        finally:
            widget.finish()

    @line_magic
    def runs(self, line: str) -> Any:
        """%runs threads | %runs show THREAD | %runs config"""
        cmd, _, rest = line.strip().partition(" ")
        if cmd == "threads":
            return self._runs_threads()
        if cmd == "show":
            if not rest.strip():
                raise UsageError("%runs show THREAD (a thread name or id)")
            return self._runs_show(rest.strip())
        if cmd == "config":
            return self._runs_config()
        raise UsageError("%runs threads | %runs show THREAD | %runs config")

    def _runs_threads(self) -> Any:
        from . import _portal

        client = self._client(None)

        async def rows() -> list[tuple[str, str, str, int]]:
            out = []
            async for thread in client.threads.list(order="desc", limit=100):
                last = thread.get("created_at") or 0
                count = 0
                async for msg in client.messages.list(thread["id"], order="desc", limit=100):
                    last = max(last, msg.get("created_at") or 0)
                    count += 1
                name = (thread.get("metadata") or {}).get(_NAME_KEY, "")
                out.append((name, thread["id"], _when(last), count))
            return out

        table = _portal.call(rows)
        if not table:
            display(Markdown("No stored threads yet."))
            return None
        lines = ["| thread | id | last activity | messages |", "| --- | --- | --- | ---: |"]
        lines += [f"| {_md(n) or '—'} | `{i}` | {w} | {c}{'+' if c >= 100 else ''} |" for n, i, w, c in table]
        display(Markdown("\n".join(lines)))
        return None

    def _runs_show(self, ref: str) -> Any:
        from . import _portal
        from .history import run_events
        from .widget import RunWidget

        client = self._client(None)

        async def load() -> list[list[Any]]:
            thread_id = ref if ref.startswith("thread_") else None
            if thread_id is None:
                async for thread in client.threads.list(order="desc"):
                    if (thread.get("metadata") or {}).get(_NAME_KEY) == ref:
                        thread_id = thread["id"]
                        break
            if thread_id is None:
                raise UsageError(f"%runs show: no stored thread named {ref!r} (see %runs threads)")
            runs = await client.runs.list(thread_id, order="asc").to_list()
            messages = await client.messages.list(thread_id, order="asc").to_list()
            out, since = [], -1
            for r in runs:
                steps = await client.steps.list(thread_id, r["id"], order="asc").to_list()
                # The prompt: the message the magic recorded, else the user's messages posted
                # since the previous run began.
                created = r.get("created_at") or 0
                prompt_id = (r.get("metadata") or {}).get(_PROMPT_KEY)
                if prompt_id:
                    prompt = [m for m in messages if m["id"] == prompt_id]
                else:
                    prompt = [m for m in messages
                              if not m.get("run_id") and since < (m.get("created_at") or 0) <= created]
                since = created
                mine = [m for m in messages if m.get("run_id") == r["id"]]
                out.append(run_events(r, steps, prompt + mine))
            return out

        batches = _portal.call(load)
        if not batches:
            display(Markdown(f"Thread {ref!r} has no runs yet."))
        for events in batches:
            widget = RunWidget(live=False)  # #10: a stored run is shown static, no comm
            for event in events:
                widget.feed(event)
            widget.finish()
            widget.show()
        return None

    def _runs_config(self) -> Any:
        env_model = os.environ.get("JUPYTER_RUNS_MODEL", "")
        rows = [
            ("model", self.model or (f"{env_model} ($JUPYTER_RUNS_MODEL)" if env_model else "")
             or ("openai:gpt-4.1-mini (OPENAI_API_KEY is set)" if os.environ.get("OPENAI_API_KEY") else "not set")),
            ("instructions", self.instructions or "—"),
            ("backend", self.base_url or "embedded engine"),
            ("store", self.store or os.environ.get("JUPYTER_RUNS_STORE") or _default_store()),
            ("api_key", _mask(self.api_key or os.environ.get("JUPYTER_RUNS_API_KEY", "")) or "not set"),
            ("OPENAI_API_KEY", _mask(os.environ.get("OPENAI_API_KEY", "")) or "not set"),
            ("OPENAI_BASE_URL", os.environ.get("OPENAI_BASE_URL", "") or "default"),
            ("model_base_url", self.model_base_url or "—"),
            ("default thread", self._default_thread_name()),
            ("approve", self.approve or "none"),
            ("wait", "auto (blocks when headless)" if self.wait is None else str(self.wait)),
            ("max_tool_output", str(self.max_tool_output)),
        ]
        lines = ["| setting | value |", "| --- | --- |"] + [f"| {k} | {_md(v)} |" for k, v in rows]
        display(Markdown("\n".join(lines)))
        return None


# Options of the line form that take a value (the message follows the options).
_VALUED = {"-t", "--thread", "-a", "--assistant", "-m", "--model", "-i", "--instructions", "--tools",
           "-o", "--out", "--temperature", "--max-tokens", "--base-url"}


def _split_line(line: str) -> tuple[str, str]:
    """Split ``%run_assistant`` 's line into options and the message (kept verbatim, so quotes
    and apostrophes in it need no escaping). ``--`` ends the options explicitly."""
    options: list[str] = []
    rest = line.strip()
    while rest.startswith("-"):
        token, _, after = rest.partition(" ")
        if token == "--":
            rest = after.strip()
            break
        options.append(token)
        rest = after.lstrip()
        if token in _VALUED and rest:
            value, _, after = rest.partition(" ")
            options.append(value)
            rest = after.lstrip()
    return " ".join(options), rest


def _default_store() -> str:
    try:
        from .backends.local.store import default_store_path

        return str(default_store_path())
    except Exception:
        return "default"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _when(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "—"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _finished(run: Any) -> bool:
    done = getattr(run, "done", None)
    if isinstance(done, bool) and done:
        return True
    from .wire import TERMINAL_STATUSES

    return run.data.get("status") in TERMINAL_STATUSES


async def _stored_events(run: Any) -> list[Any]:
    from .history import run_events

    client = run._client
    await run.retrieve_async()
    steps = await run.list_steps_async(order="asc")
    messages = [
        m async for m in client.messages.list(run.data["thread_id"], order="asc")
        if m.get("run_id") == run.data["id"]
    ]
    return run_events(run.data, steps, messages)


async def _poll_into(run: Any, widget: Any, runner: Any) -> None:
    """``--poll``: the seed's polling ``wait`` with the widget fed from each poll's objects."""
    from .wire import TERMINAL_STATUSES

    while True:
        for event in await _stored_events(run):
            widget.feed(event)
        status = run.data["status"]
        if status in TERMINAL_STATUSES:
            return
        if status == "requires_action":
            outputs = await run.do_tool_calls_async(runner=runner)
            await run.submit_tool_outputs_async(outputs)
            continue
        await asyncio.sleep(float(getattr(run._client.backend, "poll_interval", 1.0)))


async def wait_all() -> None:
    """Wait until every background run that ``%%run_assistant`` started in this kernel has ended.

    Headless executors need no such cell (each run ends before its cell returns); it is for runs
    started with ``--background`` there, or for a cell that needs every run's result.
    """
    from IPython import get_ipython

    shell = get_ipython()
    magics = shell.magics_manager.registry.get("RunAssistantMagics") if shell is not None else None
    while magics is not None and magics._tasks:
        await asyncio.gather(*list(magics._tasks), return_exceptions=True)


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(RunAssistantMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.registry.get("RunAssistantMagics")
    if magics is None:
        return
    for task in list(magics._tasks):
        task.cancel()
    for kind in ("line", "cell"):
        for name in ("run_assistant", "runs"):
            ipython.magics_manager.magics[kind].pop(name, None)
    ipython.magics_manager.registry.pop("RunAssistantMagics", None)


__all__ = ["RunAssistantMagics", "load_ipython_extension", "unload_ipython_extension"]
