"""Scale: what a user who keeps their threads pays, against a user who has few (issue 18).

Each figure is the same operation on a big store and on a small one, CPU time of this process
(every thread: the portal loop does the engine's work), interleaved, best of N:

* First ``%%run_assistant`` of a new kernel (its default thread name is new, its clients and
  caches are fresh, the store file is reopened): 10,000 stored threads vs 300. The magic runs in
  an in-process IPython shell with the scripted model; the cell blocks until the run ends.
* ``%runs threads``: 10,000 stored threads vs 300.
* One run (``runs.create`` + ``wait``, a one-word reply) on a thread holding 5,000 messages vs 10.
* Kernel memory: RSS growth per run over 200 runs on one thread, in a fresh subprocess (after 20
  warm-up runs), for the run path alone (sync client) and for ``%%run_assistant`` cells (the
  widget of each included); the baseline column is the goal, 20 KB per run.

Goals (issue 18): each ratio within 3x; RSS growth <= 20 KB per run.

    python bench/scale.py [--quick]
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

try:
    from bench._common import ROOT, Row, interleaved, main
except ImportError:
    from _common import ROOT, Row, interleaved, main

from jupyter_runs.backends.local import objects as obj
from jupyter_runs.backends.local.store import THREAD_NAME_KEY, Store

RSS_GOAL_KB = 20.0


def cpu_interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    return interleaved(fns, repeat, clock=time.process_time)


def fill_store(path: Path, threads: int, messages_each: int = 2) -> None:
    """``threads`` named threads, each with a short exchange, written in one transaction."""
    store = Store(path)
    with store.transaction():
        for i in range(threads):
            thread = obj.new_thread({"metadata": {THREAD_NAME_KEY: f"notebook:/work/n{i:05d}.ipynb"}})
            store.put_thread(thread)
            for k in range(messages_each):
                role = "user" if k % 2 == 0 else "assistant"
                store.put_message(obj.new_message(thread["id"], {"role": role, "content": f"message {k}"}))
    store.close()


def script(folder: Path, text: str = "Done.") -> str:
    path = folder / "reply.json"
    path.write_text(json.dumps({"turns": [{"text": text}]}))
    return f"scripted:{path}"


class Kernel:
    """The magic in an in-process IPython shell, on one store file; ``fresh()`` makes it look
    like a new kernel: new default thread name, no cached clients, threads or assistants."""

    def __init__(self, shell: Any, store: Path, model: str) -> None:
        self.shell, self.store, self.model = shell, store, model
        self.count = 0

    @property
    def magics(self) -> Any:
        return self.shell.magics_manager.registry["RunAssistantMagics"]

    def fresh(self) -> None:
        from jupyter_runs import _portal

        magics = self.magics
        for client in magics._clients.values():
            _portal.call(client.aclose)
        magics._clients.clear()
        magics._threads.clear()
        magics._assistants.clear()
        magics.store = str(self.store)
        magics.model = self.model
        self.count += 1
        magics.default_thread = f"session:new-kernel-{self.count}"

    def first_run(self) -> None:
        from IPython.utils.capture import capture_output

        self.fresh()
        with capture_output():
            self.shell.run_cell_magic("run_assistant", "--wait", "hello")

    def runs_threads(self) -> None:
        from IPython.utils.capture import capture_output

        self.magics.store = str(self.store)
        with capture_output():
            self.shell.run_line_magic("runs", "threads")


def shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "jupyter_runs")
    return ip


def thread_with(client: Any, store_path: Path, messages: int) -> str:
    """A thread holding ``messages`` stored messages (written directly, in one transaction)."""
    thread = client.threads.create()
    store = Store(store_path)
    with store.transaction():
        for k in range(messages):
            role = "user" if k % 2 == 0 else "assistant"
            text = f"message {k}: " + "some words of a conversation " * 6
            store.put_message(obj.new_message(thread.id, {"role": role, "content": text}))
    store.close()
    return thread.id


def rss_child(mode: str, runs: int, warmup: int) -> None:
    """(Subprocess) RSS growth per run on one thread, printed as JSON. ``magic``: one
    ``%%run_assistant --wait`` cell per run (widget included); ``client``: ``runs.create`` +
    ``wait`` on the sync client, the run path alone."""
    from IPython.utils.capture import capture_output

    import jupyter_runs as jr

    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        gc.collect()
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = folder / "threads.sqlite3"
        model = script(folder, "A reply of a few words, as a model would give. " * 4)
        if mode == "magic":
            ip = shell()
            magics = ip.magics_manager.registry["RunAssistantMagics"]
            magics.store, magics.model = str(store), model

            def one(i: int) -> None:
                with capture_output():
                    ip.run_cell_magic("run_assistant", "--wait -t one-thread", f"question {i}: " + "word " * 30)
        else:
            client = jr.Client(store=store)
            assistant = client.assistants.create(model=model)
            thread = client.threads.create()

            def one(i: int) -> None:
                client.messages.create(thread.id, content=f"question {i}: " + "word " * 30)
                client.runs.create(thread.id, assistant_id=assistant.id).wait(timeout=120)
        start = 0
        for i in range(warmup + runs):
            if i == warmup:
                start = rss()
            one(i)
        end = rss()
    print(json.dumps({"per_run_kb": (end - start) / runs / 1024, "start_mb": start / 2**20,
                      "end_mb": end / 2**20}))


def measure_rss(mode: str, runs: int, warmup: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, __file__, "--rss-child", mode, str(runs), str(warmup)],
                          capture_output=True, text=True, env=env, timeout=600, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[Row]:
    import jupyter_runs as jr

    big_n, small_n = (600, 30) if quick else (10_000, 300)
    long_n, short_n = (300, 10) if quick else (5_000, 10)
    repeat = 2 if quick else 5
    rss_runs, warmup = (20, 5) if quick else (200, 20)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = script(folder)
        big, small = folder / "big.sqlite3", folder / "small.sqlite3"
        fill_store(big, big_n)
        fill_store(small, small_n)
        ip = shell()
        kernels = {"big": Kernel(ip, big, model), "small": Kernel(ip, small, model)}
        first = cpu_interleaved({k: v.first_run for k, v in kernels.items()}, repeat)
        listing = cpu_interleaved({k: v.runs_threads for k, v in kernels.items()}, repeat)
        for kernel in kernels.values():
            kernel.fresh()  # closes their clients
        label = f"{big_n:,} vs {small_n:,} threads"
        for figure, best in (("first %%run_assistant of a new kernel", first), ("%runs threads", listing)):
            ratio = best["big"] / best["small"]
            rows.append(Row(f"scale: {figure}, {label}", best["big"] * 1e3, best["small"] * 1e3, "ms",
                            "<= 3x", ratio <= 3, f"{small_n:,} threads"))

        path = folder / "messages.sqlite3"
        with jr.Client(store=path) as client:
            assistant = client.assistants.create(model=model)
            threads = {"long": thread_with(client, path, long_n), "short": thread_with(client, path, short_n)}

            def one_run(thread_id: str) -> Callable[[], None]:
                def go() -> None:
                    r = client.runs.create(thread_id, assistant_id=assistant.id)
                    r.wait(timeout=120)
                    assert r.status == "completed", r.data
                return go

            per_run = cpu_interleaved({k: one_run(t) for k, t in threads.items()}, repeat)
        ratio = per_run["long"] / per_run["short"]
        rows.append(Row(f"scale: one run on a thread of {long_n:,} vs {short_n} messages", per_run["long"] * 1e3,
                        per_run["short"] * 1e3, "ms", "<= 3x", ratio <= 3, f"{short_n} messages"))

    for mode, what in (("client", "runs.create + wait"), ("magic", "%%run_assistant cells, widgets included")):
        rss = measure_rss(mode, rss_runs, warmup)
        rows.append(Row(f"scale: RSS growth per run, {rss_runs} runs on one thread, {what} "
                        f"({rss['start_mb']:.0f} -> {rss['end_mb']:.0f} MB)", rss["per_run_kb"], RSS_GOAL_KB,
                        "KB", f"<= {RSS_GOAL_KB:g} KB/run", rss["per_run_kb"] <= RSS_GOAL_KB, "goal"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--rss-child":
        rss_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main(run, __doc__)
