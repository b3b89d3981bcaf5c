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

import argparse
import asyncio
import hashlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import Markdown, display
from traitlets import Bool, Dict, Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from ._secret import Secret, mask
from ._table_cells import md_cell as _md
from .errors import RunError

#: A script shipped in the package, so the offline suggestion below works from any folder.
DEMO_SCRIPT = Path(__file__).parent / "scripts" / "demo.json"

_NO_MODEL = f"""No model is configured for %%run_assistant. Pick one:
  %config RunAssistantMagics.model = "openai:gpt-4.1-mini"   (with OPENAI_API_KEY set)
  %config RunAssistantMagics.model = "ollama:llama3.2"       (a local Ollama)
  %config RunAssistantMagics.model = "scripted:{DEMO_SCRIPT}"
                                                             (offline: a canned demo reply)
or set the environment variable JUPYTER_RUNS_MODEL before starting Jupyter."""

_RUNS_USAGE = """Usage: %runs COMMAND
  %runs threads [PREFIX] [--limit N | --all]
                        the latest stored threads (name, id, last activity, messages)
  %runs show [THREAD]   replay a thread's runs from the store (a name or a thread id;
                        default: the thread %%run_assistant uses without -t)
  %runs config          the effective settings, keys masked
  %runs export THREAD [--format md|html|json] [-o FILE]
                        write the conversation (with tool calls) to a file, or print it
  %runs import FILE [NAME]  read a JSON export back into a new thread
  %runs fork THREAD NEW copy a thread (runs and tool calls included) to branch off
  %runs delete THREAD   delete a thread
  %runs help            this text"""

_NAME_KEY = "jupyter_runs_name"
_ASSISTANT_KEY = "jupyter_runs_key"
_PROMPT_KEY = "jupyter_runs_prompt"
_CELL_KEY = "jupyter_runs_cell"


@magics_class
class RunAssistantMagics(Magics, Configurable):
    """Settings for ``%%run_assistant`` (``%config RunAssistantMagics.model = ...``,
    ``c.RunAssistantMagics.model = ...`` in ``ipython_config.py``)."""

    model = Unicode(
        "", help="Default model id, e.g. openai:gpt-4.1-mini, ollama:llama3.2, scripted:PATH.json "
        "(else $JUPYTER_RUNS_MODEL; else openai:gpt-4.1-mini when OPENAI_API_KEY is set)."
    ).tag(config=True)
    instructions = Unicode("", help="Default instructions for assistants the magic creates.").tag(config=True)
    store = Unicode(
        "", help="SQLite file of the embedded engine (else $JUPYTER_RUNS_STORE, else one file under "
        "the Jupyter data dir); ':memory:' keeps nothing."
    ).tag(config=True)
    base_url = Unicode("", help="A remote Assistants server (http://host:port/v1) instead of the embedded engine.").tag(config=True)
    api_key = Secret("", help="Bearer key for base_url (else $JUPYTER_RUNS_API_KEY). Never shown.").tag(config=True)
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
    context_budget = Int(
        0, help="Default request budget in estimated tokens for runs without max_prompt_tokens "
        "(0: the engine's per-model default). The oldest messages are left out past it."
    ).tag(config=True)
    # Reproducible notebooks (backends/local/models/cassette.py): record and replay model calls.
    cassette = Unicode(
        "", help="Cassette file of recorded model calls (else $JUPYTER_RUNS_CASSETTE, else "
        "NOTEBOOK.cassette.jsonl beside the notebook)."
    ).tag(config=True)
    cassette_mode = Unicode(
        "", help="off | record | replay | auto (else $JUPYTER_RUNS_CASSETTE_MODE, else off)."
    ).tag(config=True)
    rerun = Unicode(
        "rewind", help="What re-running a cell does to its thread: rewind (the cell's earlier "
        "exchange and everything after it leave the thread, kept as history) or append."
    ).tag(config=True)
    model_deadline = Float(
        1800.0, help="Seconds a model call may take in all (retries included); 0: no limit."
    ).tag(config=True)
    model_idle_timeout = Float(
        300.0, help="Seconds a model call may go without sending content (keep-alives do not "
        "count); 0: no limit."
    ).tag(config=True)
    prices = Dict(
        help="Optional prices, dollars per million tokens, by model id or name (or '*'): "
        "{'gpt-5': {'input': 1.25, 'cached_input': 0.125, 'output': 10}}. The run header then "
        "shows the run's cost. None are built in."
    ).tag(config=True)

    @validate("prices")
    def _check_prices(self, proposal: Any) -> dict[str, Any]:
        from .pricing import check_prices

        try:
            return check_prices(proposal["value"])
        except ValueError as exc:
            raise TraitError(str(exc)) from None
    tool_timeout = Float(60.0, allow_none=True, help=(
        "Seconds a tool call may run before it is cut and the model is told it timed out "
        "(None: no limit). @jr.tool(timeout=...) overrides it per tool.")).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        if shell is not None:
            self.config = shell.config
            self.update_config(shell.config)
        self._clients: dict[tuple[str, ...], Any] = {}
        self._threads: dict[tuple[Any, str], str] = {}
        self._assistants: dict[tuple[Any, str], str] = {}
        self._active: dict[str, Any] = {}  # thread id -> RunStream / Run still going
        self._tasks: set[asyncio.Task[Any]] = set()  # strong refs: a dropped task stops mid-run
        self._cell_id: str | None = None  # the cell id of the execute request now running
        if shell is not None:
            shell.events.register("pre_run_cell", self._on_pre_run_cell)
        self._tails: dict[tuple[Any, str], asyncio.Task[Any]] = {}  # (client, thread name) -> its last run

    # -- settings -------------------------------------------------------------------------------
    def _model(self, args: Any) -> str:
        model = args.model or self.model or os.environ.get("JUPYTER_RUNS_MODEL", "")
        if not model and os.environ.get("OPENAI_API_KEY"):
            model = "openai:gpt-4.1-mini"
        if not model:
            raise UsageError(_NO_MODEL)
        return model

    def _client(self, base_url: str | None) -> Any:
        """The client for the current settings. Keyed by every setting it is built from, so a
        changed ``base_url``, ``api_key``, ``store`` or ``model_base_url`` takes effect on the
        next run (each key's client keeps its own cache of thread and assistant ids)."""
        from .client import AsyncClient

        base_url = base_url or self.base_url or None
        store = self.store or os.environ.get("JUPYTER_RUNS_STORE") or None
        if base_url:
            api_key = self.api_key or os.environ.get("JUPYTER_RUNS_API_KEY") or None
            # The key itself is never kept in a dict key that a repr could show: its digest is.
            digest = hashlib.sha256(str.__str__(api_key).encode()).hexdigest() if api_key else ""
            key: tuple[str, ...] = ("remote", base_url, digest)
        else:
            key = ("local", store or "", self.model_base_url)
        if key not in self._clients:
            if base_url:
                self._clients[key] = AsyncClient(base_url, str.__str__(api_key) if api_key else None)
            else:
                config: dict[str, Any] = {"base_url": self.model_base_url} if self.model_base_url else {}
                if self.context_budget > 0:
                    config["context_budget"] = self.context_budget
                config.update(deadline=self.model_deadline, idle_timeout=self.model_idle_timeout)
                self._clients[key] = AsyncClient(store=store, model_config=config)
        return self._clients[key]

    def _default_thread_name(self) -> str:
        if self.default_thread:
            return self.default_thread
        from ._notebook import connection_file, notebook_identity

        identity = notebook_identity(self.shell.user_ns, os.environ, connection_file())
        if identity is not None:
            return identity
        # No notebook path (a console, nbclient): one thread for this kernel session.
        return f"session:{id(self.shell):x}:{os.getpid()}"

    # -- reproducibility: cassettes and re-run ---------------------------------------------------
    def _on_pre_run_cell(self, info: Any) -> None:
        # Front ends send the cell id with each execute request (JupyterLab, Notebook 7 and VS
        # Code as metadata.cellId); ipykernel hands it to run_cell, and so to this event.
        self._cell_id = getattr(info, "cell_id", None) or None

    def _cassette_meta(self, args: Any, remote: bool) -> dict[str, str]:
        """Run metadata naming this run's cassette (``MODE:PATH``), or nothing when off."""
        from .backends.local.engine import CASSETTE_KEY
        from .backends.local.models.cassette import check_mode, default_cassette_path

        try:
            mode = check_mode(args.cassette_mode or self.cassette_mode
                              or os.environ.get("JUPYTER_RUNS_CASSETTE_MODE", ""))
        except ValueError as exc:
            raise UsageError(f"--cassette-mode: {exc}") from None
        if mode == "off":
            return {}
        if remote:
            raise UsageError("a cassette records the embedded engine's model calls; for a remote "
                             "server start it with `jupyter-runs serve --cassette FILE`")
        path = args.cassette or self.cassette or os.environ.get("JUPYTER_RUNS_CASSETTE", "")
        if not path:
            ns = self.shell.user_ns
            notebook = ns.get("__vsc_ipynb_file__") or ns.get("__session__")
            cwd = None
            if isinstance(notebook, str) and os.path.isabs(notebook):
                cwd = os.path.dirname(notebook)
            path = str(default_cassette_path(notebook if isinstance(notebook, str) else None, cwd))
        value = f"{mode}:{os.path.abspath(os.path.expanduser(path))}"
        if len(value) > 512:
            raise UsageError("--cassette: the path is too long for run metadata (512 characters)")
        return {CASSETTE_KEY: value}

    async def _rewind(self, client: Any, thread_id: str, cell: str | None) -> None:
        """Re-running a cell: its earlier exchange and all after it leave the thread (kept in a
        history thread), so the thread matches the notebook top to bottom."""
        from .errors import NotFoundError

        if not cell or self.rerun != "rewind":
            return
        try:
            await client.threads.rewind(thread_id, metadata={_CELL_KEY: cell})
        except NotFoundError:
            pass  # a remote server without the extension route: append, as without a cell id

    # -- resolution (all async: they run on the kernel loop or the portal) ----------------------
    async def _thread_id(self, client: Any, name: str, new: bool) -> str:
        key = (id(client), name)
        if not new and key in self._threads:
            return self._threads[key]
        from .thread_names import find_named_thread  # by index, not a scan (issue 18)

        thread_id = None if new else await find_named_thread(client, name)
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
            head, *attrs = name.split(".")  # `shop.count`: a bound method is a tool too
            fn = self.shell.user_ns.get(head)
            for attr in attrs:
                fn = None if attr.startswith("_") else getattr(fn, attr, None)
            if fn is None:
                raise UsageError(f"--tools: no function named {name!r} in the notebook")
            if not callable(fn) or isinstance(fn, type) or name.startswith("_"):
                raise UsageError(f"--tools: {name!r} is not a function that can be a tool")
            found.append(fn)
        return found

    def _context(self, spec: str | None) -> list[Any]:
        """Describe the --context objects here, on the kernel's main thread (user objects are
        rarely thread-safe), before anything is sent."""
        if not spec:
            return []
        from .context import ContextError, attach

        try:
            return attach(spec, self.shell.user_ns)
        except ContextError as exc:
            raise UsageError(f"--context: {exc}") from None

    def _approve(self, option: str | None) -> Any:
        spec = option if option is not None else self.approve
        if not spec:
            return None
        if spec.strip() == "*":
            return "always"
        return {n.strip() for n in spec.split(",") if n.strip()}

    # -- the magics -----------------------------------------------------------------------------
    @magic_arguments()
    @argument("-t", "--thread", metavar="NAME",
              help="Named thread, created on first use and kept in the store (default: this notebook's thread).")
    @argument("--new-thread", action="store_true", help="Start the thread over (a new thread under that name).")
    @argument("-a", "--assistant", metavar="NAME_OR_ID", help="A variable holding an assistant, or an assistant id.")
    @argument("-m", "--model", metavar="ID",
              help="Model id, e.g. openai:gpt-4.1-mini, ollama:llama3.2, scripted:PATH.json.")
    @argument("-i", "--instructions", metavar="TEXT", help="Instructions for the assistant (quote them).")
    @argument("--tools", metavar="F,G", help="Comma-separated notebook functions the assistant may call.")
    @argument("--approve", nargs="?", const="*", default=None, metavar="F,G",
              help="Ask before running these tools (one comma-separated word; all when no names are given).")
    @argument("--wait", action="store_true", default=None, help="Block until the run ends.")
    @argument("--background", dest="wait", action="store_false",
              help="Stream in the background (the default when a widget front end is attached).")
    @argument("-o", "--out", metavar="NAME", help="Store the run handle (a RunStream) in this variable.")
    @argument("--poll", action="store_true", help="Poll instead of streaming.")
    @argument("--context", metavar="NAMES",
              help="Attach descriptions of these notebook objects to the message (comma-separated): "
              "variables (a DataFrame as shape, dtypes, head/tail rows and a summary), 'error' (the "
              "last exception with its traceback), In[n], Out[n], _. The run shows them as chips.")
    @argument("--notebook-tools", action="store_true",
              help="Let the assistant call read-only notebook tools: list_variables(), "
              "describe_variable(name), read_cells(last), last_error().")
    @argument("--cassette", help="Record/replay model calls in this file (see cassette_mode).")
    @argument("--cassette-mode", help="off | record | replay | auto for this run.")
    @argument("--temperature", type=float, metavar="T", help="Sampling temperature.")
    @argument("--max-tokens", type=int, metavar="N", help="max_completion_tokens of the run (at least 256).")
    @argument("--base-url", metavar="URL", help="A remote Assistants server for this run.")
    @line_cell_magic
    def run_assistant(self, line: str, cell: str | None = None) -> Any:
        """Start an assistant run on a thread: the cell body is the user message.

        The reply streams into a live widget, and the assistant's tool calls run the notebook
        functions named in --tools. Options are read as a shell reads them: quote values with
        spaces (``-i "Answer in French."``).

        Line form: ``%run_assistant [options] MESSAGE``. The options end at ``--`` or at the
        first word that is neither an option nor an option's value; the rest of the line is the
        message, verbatim (``--approve`` there takes its names as the next word: ``--approve
        f,g``; ``--approve --`` approves all).

        With no widget front end attached (nbconvert --execute, papermill, nbclient) the cell
        blocks until the run ends, so the saved notebook records it; --wait / --background
        override. A finished run is shown as a static view that needs no kernel.

        A run on a thread that is still busy with an earlier background run waits for it and
        starts after it, in cell order (its widget says so); the cell returns at once.
        """
        parser = self.run_assistant.parser
        try:
            if cell is None:
                argv, message = split_line(line, parser)
            else:
                argv, message = shlex.split(line), cell
            args = parser.parse_args(argv)
        except UsageError:
            raise
        except (SystemExit, ValueError) as exc:  # argparse exits; shlex rejects open quotes
            raise UsageError(f"%%run_assistant: {exc}") from None
        message = message.strip()
        if not message:
            raise UsageError("%%run_assistant needs a message: write it in the cell body")
        return self._start(args, message)

    def _start(self, args: Any, message: str) -> Any:
        from .tools import Namespace, ToolRunner, to_tool_params
        from .widget import RunWidget

        client = self._client(args.base_url)
        tools = self._tools(args.tools)
        if args.notebook_tools:
            from .notebook_tools import make_tools

            tools += make_tools(self.shell)
        attachments = self._context(args.context)

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

        widget = RunWidget(live=attached, prices=dict(self.prices))  # #10: no comm when headless
        widget.set_prompt(message)
        if attachments:
            widget.context = [a.to_dict() for a in attachments]
        runner = ToolRunner(
            # Only the --tools functions run (looked up again at call time, for redefinitions):
            # the run's tool names come from an assistant or server the user may not control.
            env=Namespace(self.shell.user_ns), tools=tools, timeout=self.tool_timeout, approve=self._approve(args.approve),
            # A blocked cell cannot receive clicks, so --wait asks on stdin (the runner's default).
            approver=None if wait else widget.request_approval, max_output=self.max_tool_output,
            # Streams report records through on_tool_call; polled runs only through the runner.
            on_record=widget.record_tool_call if args.poll else None,
        )

        cell = self._cell_id
        cassette_meta = self._cassette_meta(args, remote=bool(args.base_url or self.base_url))
        widget.timeless = bool(cassette_meta)

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
            await self._rewind(client, thread_id, cell)
            prompt = await client.messages.create(
                thread_id, role="user", content=message, context=attachments or None,
                **({"metadata": {_CELL_KEY: cell[:512]}} if cell else {}))
            params: dict[str, Any] = {
                k: v for k, v in (("temperature", args.temperature), ("max_completion_tokens", args.max_tokens))
                if v is not None
            }
            # Remembered so `%runs show` can pair each run with the prompt that started it.
            params["metadata"] = {_PROMPT_KEY: prompt["id"], **cassette_meta}
            if tools:
                params["tools"] = tools
            run = await client.runs.create(thread_id, assistant_id=assistant_id, stream=not args.poll, **params)
            self._active[thread_id] = run
            return thread_id, run

        from . import _portal

        # Runs on one thread go one at a time, in cell order (Run All): a run whose thread is
        # still busy with an earlier background run waits for it, as a task, so the cell
        # returns and the kernel stays free.
        queue_key = (id(client), thread_name)
        previous = None if args.new_thread else self._tails.get(queue_key)
        if previous is not None and not previous.done():
            if wait:
                raise UsageError(
                    f"thread {thread_name!r} already has a run going in the background; --wait would "
                    "block the kernel that run needs. Wait for it (`await RUN.wait_async()` or "
                    "`await jr.wait_all()`), drop --wait to queue this run after it, or use -t NAME.")
            return self._queue(previous, queue_key, prepare, widget, runner, args, loop)

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
        task = self._launch(thread_id, run, widget, runner, args.poll, loop)
        self._tails[queue_key] = task
        return None

    def _launch(self, thread_id: str, run: Any, widget: Any, runner: Any, poll: bool,
                loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any]:
        """Drive a created run into its widget as a background task (kept in ``_tasks``)."""
        if poll:
            widget.on_stop(run.cancel_async)
            task = loop.create_task(self._poll_async(run, widget, runner))
        else:
            task = widget.drive(run, env=self.shell.user_ns, runner=runner)
        self._keep(task)

        def done(t: asyncio.Task[Any]) -> None:
            if self._active.get(thread_id) is run:
                self._active.pop(thread_id, None)

        task.add_done_callback(done)
        return task

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _queue(self, previous: asyncio.Task[Any], queue_key: tuple[Any, str], prepare: Callable[[], Any],
               widget: Any, runner: Any, args: Any, loop: asyncio.AbstractEventLoop) -> None:
        """Start this run once ``previous`` (the thread's last run) has ended. Its widget says
        it is waiting; Stop meanwhile drops it before anything is posted to the thread."""
        handle = QueuedRun(loop)
        started = False

        async def start_when_free() -> None:
            nonlocal started
            await asyncio.wait({previous})
            try:
                thread_id, run = await prepare()
            except Exception as exc:
                text = str(exc) if isinstance(exc, UsageError) else f"{type(exc).__name__}: {exc}"
                widget.fail(f"could not start the run: {text}")
                widget.finish()
                handle._set_error(exc)
                return
            started = True
            handle._set_run(run)
            if args.out and self.shell.user_ns.get(args.out) is handle:
                self.shell.user_ns[args.out] = run
            await asyncio.wait({self._launch(thread_id, run, widget, runner, args.poll, loop)})

        task = loop.create_task(start_when_free())

        def stop_waiting() -> None:
            if not started and not task.done():
                task.cancel()

        def dropped(t: asyncio.Task[Any]) -> None:
            if t.cancelled():
                widget.set_cancelled_before_start()
                widget.finish()
                handle._set_error(RunError("the run was stopped before it started", status="cancelled"))

        task.add_done_callback(dropped)
        self._keep(task)
        self._tails[queue_key] = task
        widget.on_stop(stop_waiting)
        widget.set_waiting()
        if args.out:
            self.shell.user_ns[args.out] = handle
        widget.show()
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
        """%runs threads | %runs show [THREAD] | %runs config | %runs help

        threads   the stored threads: name, id, last activity, message count
        show      replay a thread's past runs from the store (default: this notebook's thread)
        config    the effective settings, keys masked
        help      this text
        """
        cmd, _, rest = line.strip().partition(" ")
        if cmd in ("", "help", "-h", "--help"):
            print(_RUNS_USAGE)
            return None
        if cmd == "threads":
            return self._runs_threads(rest)
        if cmd == "show":
            return self._runs_show(rest.strip() or self._default_thread_name())
        if cmd == "config":
            return self._runs_config()
        if cmd in ("export", "delete", "fork", "import"):
            return self._runs_lifecycle(cmd, rest)
        raise UsageError(f"%runs: unknown command {cmd!r}\n{_RUNS_USAGE}")

    def _runs_lifecycle(self, cmd: str, rest: str) -> Any:
        """``%runs export|delete|fork|import``: a thread as a file, gone, copied or read back."""
        import argparse
        import shlex

        from . import _portal
        from .export import FORMATS, render

        parser = argparse.ArgumentParser(prog=f"%runs {cmd}", add_help=False, exit_on_error=False)
        parser.add_argument("target")
        if cmd == "export":
            parser.add_argument("--format", "-f", choices=FORMATS, default=None)
            parser.add_argument("-o", "--out", default=None)
        elif cmd == "fork":
            parser.add_argument("new")
        elif cmd == "import":
            parser.add_argument("name", nargs="?", default=None)
        try:
            opts = parser.parse_args(shlex.split(rest))
        except (argparse.ArgumentError, ValueError, SystemExit) as exc:
            raise UsageError(f"%runs {cmd}: {exc}") from None
        client = self._client(None)

        async def thread_of(ref: str) -> str:
            from .thread_names import thread_ref

            found = await thread_ref(client, ref)
            if found is not None:
                return found
            raise UsageError(f"%runs {cmd}: no stored thread named {ref!r} (see %runs threads)")

        async def act() -> str:
            if cmd == "import":
                import json as _json

                with open(opts.target, encoding="utf-8") as fh:
                    data = _json.load(fh)
                meta = {_NAME_KEY: opts.name[:512]} if opts.name else None
                thread = await client.threads.import_(data, metadata=meta)
                self._forget_thread(opts.name)
                return f"Imported {len(data.get('messages') or [])} messages into thread " \
                       f"{opts.name or thread['id']!r} (`{thread['id']}`)."
            thread_id = await thread_of(opts.target)
            if cmd == "delete":
                await client.threads.delete(thread_id)
                self._forget_thread(opts.target, thread_id)
                return f"Deleted thread {opts.target!r}."
            if cmd == "fork":
                fork = await client.threads.fork(thread_id, metadata={_NAME_KEY: opts.new[:512]})
                self._forget_thread(opts.new)
                return f"Forked {opts.target!r} into {opts.new!r} (`{fork['id']}`)."
            fmt = opts.format or (opts.out.rsplit(".", 1)[-1] if opts.out and "." in opts.out else "md")
            fmt = {"markdown": "md", "htm": "html"}.get(fmt, fmt)
            if fmt not in FORMATS:
                raise UsageError(f"%runs export: unknown format {fmt!r}; use --format md|html|json")
            text = render(await client.threads.export(thread_id), fmt)
            if not opts.out:
                return text
            with open(opts.out, "w", encoding="utf-8") as fh:
                fh.write(text)
            return f"Exported thread {opts.target!r} to {opts.out} ({fmt})."

        result = _portal.call(act)
        if cmd == "export" and not opts.out:
            print(result)
        else:
            display(Markdown(_md(result)))
        return None

    def _forget_thread(self, name: str | None, thread_id: str | None = None) -> None:
        """Drop cached name -> thread lookups that a delete, fork or import made stale."""
        for key, value in list(self._threads.items()):
            if key[1] == name or value == thread_id:
                del self._threads[key]

    def _runs_threads(self, line: str = "") -> Any:
        """The latest page of threads (issue 18: one page read, whatever the store holds)."""
        from . import _portal
        from .thread_names import parse_threads_args, thread_rows, threads_markdown

        args = parse_threads_args(line)
        client = self._client(None)
        rows, more = _portal.call(lambda: thread_rows(client, args))
        display(Markdown(threads_markdown(rows, more, args)))
        return None

    def _runs_show(self, ref: str) -> Any:
        from . import _portal
        from .history import run_events
        from .widget import RunWidget

        client = self._client(None)

        async def load() -> list[list[Any]]:
            from .thread_names import thread_ref

            thread_id = await thread_ref(client, ref)
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
                out.append((run_events(r, steps, prompt + mine), prompt))
            return out

        batches = _portal.call(load)
        if not batches:
            display(Markdown(f"Thread {ref!r} has no runs yet."))
        from .context import is_block, parse_blocks

        for events, prompt in batches:
            widget = RunWidget(live=False)  # #10: a stored run is shown static, no comm
            if prompt:  # the prompt as typed, its --context attachments as chips (context.py)
                parts = [(p.get("text") or {}).get("value") or "" for p in prompt[0].get("content") or ()
                         if p.get("type") == "text"]
                widget.set_prompt("\n\n".join(t for t in parts if not is_block(t)))
                widget.context = parse_blocks(prompt[0])
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
            ("api_key", mask(self.api_key or os.environ.get("JUPYTER_RUNS_API_KEY", "")) or "not set"),
            ("OPENAI_API_KEY", mask(os.environ.get("OPENAI_API_KEY", "")) or "not set"),
            ("OPENAI_BASE_URL", os.environ.get("OPENAI_BASE_URL", "") or "default"),
            ("model_base_url", self.model_base_url or "—"),
            ("default thread", self._default_thread_name()),
            ("approve", self.approve or "none"),
            ("wait", "auto (blocks when headless)" if self.wait is None else str(self.wait)),
            ("max_tool_output", str(self.max_tool_output)),
            ("tool_timeout", "none" if self.tool_timeout is None else f"{self.tool_timeout:g} s"),
        ]
        lines = ["| setting | value |", "| --- | --- |"] + [f"| {k} | {_md(v)} |" for k, v in rows]
        display(Markdown("\n".join(lines)))
        return None


def _takes_value(parser: argparse.ArgumentParser, token: str) -> bool:
    """Whether ``token`` is an option whose value is the next word (``--opt=value`` and ``-tNAME``
    carry theirs). In the line form ``--approve`` takes its names as the next word too, unless an
    option or ``--`` follows: a word after it is never mistaken for the start of the message."""
    action = parser._option_string_actions.get(token)
    return action is not None and action.nargs != 0


def split_line(line: str, parser: argparse.ArgumentParser) -> tuple[list[str], str]:
    """Split ``%run_assistant`` 's line into option words and the message.

    Options are read as a shell would (``shlex``: quotes group and are removed) up to ``--`` or
    the first word that is neither an option nor an option's value; from there on the line is the
    message, verbatim, so quotes and apostrophes in it need no escaping.
    """
    argv: list[str] = []
    pos, expect_value = 0, False
    while True:
        while pos < len(line) and line[pos].isspace():
            pos += 1
        if pos >= len(line):
            return argv, ""
        is_option = line[pos] == "-" and not _is_number(line, pos)
        if not is_option and not expect_value:
            return argv, line[pos:].strip()
        if expect_value and is_option and argv and argv[-1] == "--approve":
            expect_value = False  # `--approve -t x`: approve every tool
            continue
        lex = shlex.shlex(line[pos:], posix=True, punctuation_chars=False)
        lex.whitespace_split, lex.commenters = True, ""
        token = lex.get_token()
        # shlex reads one character past the token (the separating space); no further.
        consumed = lex.instream.tell()
        pos += consumed
        if token is None:
            return argv, ""
        if not expect_value and token == "--":
            return argv, line[pos:].strip()
        argv.append(token)
        expect_value = not expect_value and _takes_value(parser, token)


def _is_number(line: str, pos: int) -> bool:
    """``-0.5`` after ``--temperature`` is a value, not an option."""
    word = line[pos:].split(None, 1)[0]
    try:
        float(word)
    except ValueError:
        return False
    return True


class QueuedRun:
    """The ``-o`` handle of a run that waits for the previous run on its thread.

    ``await handle.wait_async()`` waits for it to start and then to end; once started, the
    variable is rebound to the run itself and every run attribute reads through.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._run: Any = None
        self._started: asyncio.Future[Any] = loop.create_future()

    def _set_run(self, run: Any) -> None:
        self._run = run
        if not self._started.done():
            self._started.set_result(run)

    def _set_error(self, exc: BaseException) -> None:
        if not self._started.done():
            self._started.set_exception(exc)
            self._started.exception()  # retrieved: nobody may ever await this handle

    @property
    def done(self) -> bool:
        return _finished(self._run) if self._run is not None else self._started.done()

    async def wait_async(self, *args: Any, **kwargs: Any) -> Any:
        run = await asyncio.shield(self._started)
        return await run.wait_async(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._run is None:
            raise AttributeError(f"{name!r}: this run has not started yet (it waits for the previous run "
                                 "on its thread); `await RUN.wait_async()` waits for it")
        return getattr(self._run, name)

    def __repr__(self) -> str:
        return repr(self._run) if self._run is not None else "QueuedRun(waiting for the previous run on its thread)"


def _default_store() -> str:
    try:
        from .backends.local.store import default_store_path

        return str(default_store_path())
    except Exception:
        return "default"


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
            if runner.stopped:  # Stop or an interrupt cut a tool: the run ends cancelled
                await run._stopped_async()
                continue
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
