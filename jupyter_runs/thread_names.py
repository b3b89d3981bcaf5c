"""Named threads: find one by name, and the ``%runs threads`` table, at a cost that does not grow
with the number of stored threads.

A thread's name is its ``jupyter_runs_name`` metadata. ``threads.list`` takes ``name`` (exact) and
``name_prefix`` filters that the embedded engine and ``jupyter-runs serve`` answer from an index,
so the lookup reads one row and the table reads one page. A remote server that ignores the filters
still gives the right answer: every item is checked against the name, and pages are fetched only
while looking (a slower scan, never a wrong thread).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from IPython.core.error import UsageError

from ._table_cells import md_cell, when
from .backends.local.store import THREAD_NAME_KEY

#: The longest name kept (thread metadata values are at most 512 characters).
MAX_NAME = 512
#: Threads shown by ``%runs threads`` without ``--limit`` / ``--all``.
DEFAULT_PAGE = 20
#: Messages counted per thread in the table (more shows as ``100+``).
COUNT_UP_TO = 100


def thread_name(thread: Any) -> str:
    return (thread.get("metadata") or {}).get(THREAD_NAME_KEY, "")


async def find_named_thread(client: Any, name: str) -> str | None:
    """The id of the newest thread named ``name``, or None."""
    name = name[:MAX_NAME]
    async for thread in client.threads.list(name=name, order="desc"):
        if thread_name(thread) == name:
            return thread["id"]
    return None


async def thread_ref(client: Any, ref: str) -> str | None:
    """A thread id (``thread_...``) as it is, else the id of the newest thread named ``ref``."""
    return ref if ref.startswith("thread_") else await find_named_thread(client, ref)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%runs threads", add_help=False, exit_on_error=False)
    parser.add_argument("prefix", nargs="?", default=None,
                        help="show only threads whose name starts with this")
    parser.add_argument("--limit", "-n", type=int, default=DEFAULT_PAGE,
                        help=f"how many of the latest threads (default {DEFAULT_PAGE})")
    parser.add_argument("--all", action="store_true", help="every stored thread")
    return parser


USAGE = "%runs threads [NAME_PREFIX] [--limit N | --all]"


def parse_threads_args(line: str) -> argparse.Namespace:
    """``%runs threads`` options; bad ones are a UsageError saying the usage."""
    try:
        args, extra = _parser().parse_known_args(shlex.split(line))
    except (argparse.ArgumentError, ValueError) as exc:
        raise UsageError(f"{exc}\nusage: {USAGE}") from None
    if extra:
        raise UsageError(f"unexpected {' '.join(extra)!r}\nusage: {USAGE}")
    if args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}\nusage: {USAGE}")
    return args


async def thread_rows(client: Any, args: argparse.Namespace) -> tuple[list[tuple[str, str, int, int]], bool]:
    """(name, id, last activity, message count) of the latest threads, and whether more exist.

    Without ``--all`` this reads only the pages the limit needs: one, up to 100 threads.
    """
    query: dict[str, Any] = {"order": "desc", "limit": 100 if args.all else min(args.limit, 100)}
    if args.prefix:
        query["name_prefix"] = args.prefix[:MAX_NAME]
    rows: list[tuple[str, str, int, int]] = []
    async for page in client.threads.list(**query).pages():
        for thread in page["data"]:
            name = thread_name(thread)
            if args.prefix and not name.startswith(args.prefix):
                continue  # a server that ignored name_prefix
            if not args.all and len(rows) == args.limit:
                return rows, True
            rows.append((name, thread["id"], *await _activity(client, thread)))
        if not args.all and len(rows) == args.limit:
            return rows, bool(page.get("has_more"))
    return rows, False


async def _activity(client: Any, thread: Any) -> tuple[int, int]:
    """Last activity and message count (up to COUNT_UP_TO) of a thread: one page of messages."""
    async for page in client.messages.list(thread["id"], order="desc", limit=COUNT_UP_TO).pages():
        newest = max((m.get("created_at") or 0 for m in page["data"]), default=0)
        return max(thread.get("created_at") or 0, newest), len(page["data"])
    return thread.get("created_at") or 0, 0


def threads_markdown(rows: list[tuple[str, str, int, int]], more: bool, args: argparse.Namespace) -> str:
    if not rows:
        return "No stored threads yet." if not args.prefix else f"No stored thread name starts with {md_cell(args.prefix)}."
    lines = ["| thread | id | last activity | messages |", "| --- | --- | --- | ---: |"]
    lines += [f"| {md_cell(n) or '—'} | `{i}` | {when(w)} | {c}{'+' if c >= COUNT_UP_TO else ''} |"
              for n, i, w, c in rows]
    if more:
        lines += ["", f"The latest {len(rows)} threads; more are stored: "
                      "`%runs threads --limit N`, `--all`, or a name prefix (`%runs threads NAME`)."]
    return "\n".join(lines)
