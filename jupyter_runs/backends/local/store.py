"""SQLite store of the embedded engine: assistants, threads, messages, runs and run steps.

Each object is kept as its wire JSON in a ``data`` column, next to the few columns that lists sort
and filter on (thread, run, status, created_at). Keeping the wire JSON whole means an object comes
back exactly as it was sent, and new spec fields need no migration.

Durability rules: messages and steps are written when they complete (never per delta) and every
multi-row change is one transaction, so a crash loses at most the reply being streamed, never half
of one. WAL with ``synchronous=NORMAL`` survives a killed process (not a power cut), at a fraction
of the cost of a full fsync per write. Runs record the process that owns them; when a store is
opened, runs whose owner died mid-run are marked ``failed`` ("interrupted").

The store is synchronous and not thread-safe: the engine uses it from one thread (the portal loop).
The engine never lets SQLite sleep on its loop waiting for the write lock (``writes.py``).

One active run per thread, across processes: the ``runs`` table is the record (status + ``owner``,
``pid:token`` of the store that drives the run). A new run checks it inside its ``BEGIN IMMEDIATE``
transaction (:meth:`Store.thread_runner`), so two processes can't both start one. A run whose owner
process is gone (pid no longer alive) does not hold its thread: it is marked failed (interrupted)
by whoever needs the thread next. PIDs are checked rather than leases renewed by heartbeats: a
live owner writes nothing while a run waits (for tool outputs, for a slow model), and a crashed one
is detected at once. The price is a reused pid, which only delays recovery until it exits.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ...errors import BadRequestError

#: Run statuses that mean the run still needs a live engine.
ACTIVE_STATUSES = ("queued", "in_progress", "requires_action", "cancelling")

INTERRUPTED_ERROR = {
    "code": "server_error",
    "message": "interrupted: the engine stopped while this run was in progress",
}

# Forward migrations, applied in order; ``PRAGMA user_version`` is the number applied. Never edit
# one that has shipped: append a new one.
_V1 = """
CREATE TABLE assistants (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE threads (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL REFERENCES threads(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE run_steps (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    thread_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX messages_thread ON messages(thread_id, created_at);
CREATE INDEX runs_thread ON runs(thread_id, created_at);
CREATE INDEX run_steps_run ON run_steps(run_id, created_at);
"""

# v2: filter messages by run (``list_messages?run_id=``), find unfinished runs on open without a
# scan, and record which process owns a run so a second process never "recovers" a live run.
_V2 = """
ALTER TABLE messages ADD COLUMN run_id TEXT;
UPDATE messages SET run_id = json_extract(data, '$.run_id');
CREATE INDEX messages_run ON messages(run_id);
CREATE INDEX runs_status ON runs(status);
ALTER TABLE runs ADD COLUMN owner TEXT;
"""

#: The metadata key holding a thread's name (``%%run_assistant -t NAME``). The store indexes it, so
#: finding a thread by name reads one index entry instead of every thread's JSON.
THREAD_NAME_KEY = "jupyter_runs_name"
# The indexed expression; a query must spell it the same way for SQLite to use the index.
_THREAD_NAME = f"json_extract(data, '$.metadata.{THREAD_NAME_KEY}')"

# v3: every list answers by index (issue 18): threads and assistants page by creation time, and a
# thread is found by name, instead of a full scan + sort that grew with every stored thread; a
# run's messages are found without reading the rest of its thread.
_V3 = f"""
CREATE INDEX threads_created ON threads(created_at);
DROP INDEX messages_run;
CREATE INDEX messages_run ON messages(run_id, created_at);
CREATE INDEX assistants_created ON assistants(created_at);
CREATE INDEX threads_name ON threads({_THREAD_NAME}, created_at);
"""

MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [_V1, _V2, _V3]
SCHEMA_VERSION = len(MIGRATIONS)

# Tokens of the stores open in this process: a run owned by one of them is alive.
_LIVE_OWNERS: set[str] = set()


def default_store_path() -> Path:
    """``$JUPYTER_RUNS_STORE``, else ``<jupyter data dir>/jupyter_runs/threads.sqlite3``."""
    env = os.environ.get("JUPYTER_RUNS_STORE")
    if env:
        return Path(env).expanduser()
    try:
        from jupyter_core.paths import jupyter_data_dir

        base = Path(jupyter_data_dir())
    except ImportError:
        base = Path.home() / ".local" / "share" / "jupyter"
    return base / "jupyter_runs" / "threads.sqlite3"


def new_id(prefix: str) -> str:
    """An id in the API's style: ``prefix_`` + 24 random hex digits."""
    return f"{prefix}_{secrets.token_hex(12)}"


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> int:
    """Apply the migrations the database lacks (up to ``upto``); return the version reached."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    target = SCHEMA_VERSION if upto is None else upto
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"store schema version {version} is newer than this jupyter_runs understands "
            f"({SCHEMA_VERSION}); upgrade jupyter_runs"
        )
    for number in range(version + 1, target + 1):
        step = MIGRATIONS[number - 1]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if callable(step):
                step(conn)
            else:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return max(version, target)


def _owner_alive(owner: str | None) -> bool:
    if not owner:
        return False
    pid_text, _, token = owner.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return owner in _LIVE_OWNERS
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Store:
    """One SQLite file (or ``":memory:"``) holding every object of the embedded engine."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = default_store_path()
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.path = str(Path(self.path).expanduser())
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is exactly the
        # block that needs one. check_same_thread=False: created on the caller's thread, used on
        # the portal thread (never two at once).
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA busy_timeout = 5000")
        if self.path != ":memory:":
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
        self._depth = 0
        migrate(self._conn)
        self.owner = f"{os.getpid()}:{secrets.token_hex(6)}"
        _LIVE_OWNERS.add(self.owner)
        self.recovered = self.recover_interrupted()

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    def close(self) -> None:
        _LIVE_OWNERS.discard(self.owner)
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all (nested blocks join the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._conn.execute("COMMIT")

    def integrity_check(self) -> str:
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]

    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def _get(self, table: str, ident: str, **where: str) -> dict[str, Any] | None:
        sql = f"SELECT data FROM {table} WHERE id = ?"
        args: list[Any] = [ident]
        for column, value in where.items():
            sql += f" AND {column} = ?"
            args.append(value)
        row = self._conn.execute(sql, args).fetchone()
        return json.loads(row[0]) if row else None

    def _delete(self, table: str, ident: str) -> bool:
        return self._conn.execute(f"DELETE FROM {table} WHERE id = ?", (ident,)).rowcount > 0

    def _put(self, table: str, obj: Mapping[str, Any], **columns: Any) -> None:
        # An upsert (not INSERT OR REPLACE) keeps the rowid, which orders rows created in the
        # same second.
        names = ["id", "created_at", "data", *columns]
        values = [obj["id"], obj["created_at"], json.dumps(obj, separators=(",", ":")),
                  *columns.values()]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        self._conn.execute(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT(id) DO UPDATE SET {updates}",
            values,
        )

    def _page(
        self,
        table: str,
        where: Mapping[str, Any],
        *,
        limit: Any = 20,
        order: Any = "desc",
        after: str | None = None,
        before: str | None = None,
        filters: Iterable[tuple[str, Iterable[Any]]] = (),
    ) -> dict[str, Any]:
        limit, order = _page_args(limit, order)
        clauses = [f"{column} = ?" for column in where]
        args: list[Any] = list(where.values())
        for clause, values in filters:  # SQL written here, in this module, never by a caller
            clauses.append(clause)
            args.extend(values)
        descending = order == "desc"
        for name, cursor in (("after", after), ("before", before)):
            if not cursor:
                continue
            row = self._conn.execute(
                f"SELECT created_at, rowid FROM {table} WHERE id = ?", (cursor,)
            ).fetchone()
            if row is None:
                raise BadRequestError(
                    f"Invalid '{name}': no object with id '{cursor}' in this list.", param=name
                )
            # "after" follows the list's order; "before" goes against it.
            smaller = (name == "after") == descending
            clauses.append(f"(created_at, rowid) {'<' if smaller else '>'} (?, ?)")
            args.extend(row)
        # "before" alone pages backwards: fetch the nearest rows, then restore the list's order.
        backwards = bool(before) and not after
        scan_desc = descending != backwards
        direction = "DESC" if scan_desc else "ASC"
        sql = f"SELECT data FROM {table}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY created_at {direction}, rowid {direction} LIMIT ?"
        rows = self._conn.execute(sql, [*args, limit + 1]).fetchall()
        has_more = len(rows) > limit
        data = [json.loads(r[0]) for r in rows[:limit]]
        if backwards:
            data.reverse()
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        }

    # -- assistants -------------------------------------------------------------------------

    def put_assistant(self, assistant: Mapping[str, Any]) -> None:
        self._put("assistants", assistant)

    def get_assistant(self, assistant_id: str) -> dict[str, Any] | None:
        return self._get("assistants", assistant_id)

    def delete_assistant(self, assistant_id: str) -> bool:
        return self._delete("assistants", assistant_id)

    def list_assistants(self, **page: Any) -> dict[str, Any]:
        return self._page("assistants", {}, **page)

    # -- threads ----------------------------------------------------------------------------

    def put_thread(self, thread: Mapping[str, Any]) -> None:
        self._put("threads", thread)

    def get_thread(self, thread_id: str) -> dict[str, Any] | None:
        return self._get("threads", thread_id)

    def delete_thread(self, thread_id: str) -> bool:
        return self._delete("threads", thread_id)

    def list_threads(
        self, *, name: str | None = None, name_prefix: str | None = None, **page: Any
    ) -> dict[str, Any]:
        """A page of threads, newest first by default; ``name`` keeps the threads of that name,
        ``name_prefix`` those whose name starts with it (both answered by the name index)."""
        filters: list[tuple[str, list[Any]]] = []
        if name is not None:
            filters.append((f"{_THREAD_NAME} = ?", [name]))
        if name_prefix:
            # A range on the index: every string that starts with the prefix sorts between it
            # and the prefix followed by the highest code point.
            filters.append((f"{_THREAD_NAME} >= ? AND {_THREAD_NAME} < ?",
                            [name_prefix, name_prefix + "\U0010ffff"]))
        return self._page("threads", {}, filters=filters, **page)

    # -- messages ---------------------------------------------------------------------------

    def put_message(self, message: Mapping[str, Any]) -> None:
        self._put("messages", message, thread_id=message["thread_id"], run_id=message.get("run_id"))

    def get_message(self, thread_id: str, message_id: str) -> dict[str, Any] | None:
        return self._get("messages", message_id, thread_id=thread_id)

    def delete_message(self, thread_id: str, message_id: str) -> bool:
        return self._conn.execute(
            "DELETE FROM messages WHERE id = ? AND thread_id = ?", (message_id, thread_id)
        ).rowcount > 0

    def list_messages(self, thread_id: str, run_id: str | None = None, **page: Any) -> dict[str, Any]:
        where = {"thread_id": thread_id}
        if run_id:
            where["run_id"] = run_id
        return self._page("messages", where, **page)

    def thread_messages(self, thread_id: str) -> list[dict[str, Any]]:
        """Every message of a thread, oldest first (to rebuild the conversation)."""
        rows = self._conn.execute(
            "SELECT data FROM messages WHERE thread_id = ? ORDER BY created_at, rowid", (thread_id,)
        )
        return [json.loads(r[0]) for r in rows]

    def recent_messages(self, thread_id: str, limit: int, offset: int = 0) -> list[dict[str, Any]]:
        """A thread's messages newest first, ``limit`` of them after skipping ``offset``: a run
        reads only as far back as its request budget reaches."""
        rows = self._conn.execute(
            "SELECT data FROM messages WHERE thread_id = ? "
            "ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (thread_id, limit, offset),
        )
        return [json.loads(r[0]) for r in rows]

    # -- runs -------------------------------------------------------------------------------

    def put_run(self, run: Mapping[str, Any]) -> None:
        owner = self.owner if run["status"] in ACTIVE_STATUSES else None
        self._put("runs", run, thread_id=run["thread_id"], status=run["status"], owner=owner)

    def get_run(self, thread_id: str, run_id: str) -> dict[str, Any] | None:
        return self._get("runs", run_id, thread_id=thread_id)

    def list_runs(self, thread_id: str, **page: Any) -> dict[str, Any]:
        return self._page("runs", {"thread_id": thread_id}, **page)

    # -- run steps --------------------------------------------------------------------------

    def put_step(self, step: Mapping[str, Any]) -> None:
        self._put("run_steps", step, run_id=step["run_id"], thread_id=step["thread_id"])

    def get_step(self, thread_id: str, run_id: str, step_id: str) -> dict[str, Any] | None:
        return self._get("run_steps", step_id, thread_id=thread_id, run_id=run_id)

    def list_steps(self, thread_id: str, run_id: str, **page: Any) -> dict[str, Any]:
        return self._page("run_steps", {"thread_id": thread_id, "run_id": run_id}, **page)

    def run_steps(self, run_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """The steps of several runs, oldest first, by run id."""
        ids = list(run_ids)
        out: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
        if not ids:
            return out
        # One SQL text whatever the number of runs: an IN list of N placeholders was a new
        # statement per thread length, and sqlite3's statement cache kept 128 of them (the
        # kernel grew ~35 KB per run on one thread; issue 18).
        rows = self._conn.execute(
            "SELECT run_id, data FROM run_steps WHERE run_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY created_at, rowid",
            (json.dumps(ids),),
        )
        for run_id, data in rows:
            out[run_id].append(json.loads(data))
        return out

    # -- thread lifecycle: rewind and fork ----------------------------------------------------

    def rewind_thread(self, thread_id: str, message_id: str, history: Mapping[str, Any]) -> dict[str, int]:
        """Move ``message_id`` and everything after it (messages, the runs they started or
        belong to, and those runs' steps) from ``thread_id`` into the new thread ``history``.

        Nothing is deleted: the rewound exchanges stay readable in the history thread, they only
        stop being part of the conversation. Runs are matched by the messages they own or were
        started by (the magic records a run's prompt id) and by creation time after the cut,
        since created_at has one-second resolution and cannot order a fast run by itself.
        """
        row = self._conn.execute(
            "SELECT created_at, rowid FROM messages WHERE id = ? AND thread_id = ?",
            (message_id, thread_id),
        ).fetchone()
        if row is None:
            raise BadRequestError(f"No message '{message_id}' in thread '{thread_id}'.",
                                  param="message_id")
        moved = [r[0] for r in self._conn.execute(
            "SELECT id FROM messages WHERE thread_id = ? AND (created_at, rowid) >= (?, ?)",
            (thread_id, *row),
        )]
        marks = ", ".join("?" * len(moved))
        runs = [r[0] for r in self._conn.execute(
            f"SELECT id FROM runs WHERE thread_id = ? AND (created_at > ? OR id IN "
            f"(SELECT run_id FROM messages WHERE id IN ({marks}) AND run_id IS NOT NULL) OR "
            f"json_extract(data, '$.metadata.jupyter_runs_prompt') IN ({marks}))",
            (thread_id, row[0], *moved, *moved),
        )]
        target = history["id"]
        with self.transaction():
            self.put_thread(history)
            for table, ids in (("messages", moved), ("runs", runs)):
                if ids:
                    self._conn.execute(
                        f"UPDATE {table} SET thread_id = ?, data = json_set(data, '$.thread_id', ?) "
                        f"WHERE id IN ({', '.join('?' * len(ids))})",
                        (target, target, *ids),
                    )
            if runs:
                self._conn.execute(
                    "UPDATE run_steps SET thread_id = ?, data = json_set(data, '$.thread_id', ?) "
                    f"WHERE run_id IN ({', '.join('?' * len(runs))})",
                    (target, target, *runs),
                )
        return {"messages": len(moved), "runs": len(runs)}

    def find_message(self, thread_id: str, key: str, value: str) -> str | None:
        """The id of the thread's earliest message whose ``metadata[key]`` is ``value``."""
        row = self._conn.execute(
            "SELECT id FROM messages WHERE thread_id = ? AND json_extract(data, ?) = ? "
            "ORDER BY created_at, rowid LIMIT 1",
            (thread_id, f"$.metadata.{key}", value),
        ).fetchone()
        return row[0] if row else None

    def fork_thread(self, thread_id: str, fork: Mapping[str, Any]) -> None:
        """Copy every message, run and step of ``thread_id`` into the new thread ``fork``, with
        new ids and every reference between them (message.run_id, a step's run and message,
        the magic's prompt id) remapped, so the fork's conversation is the original's."""
        ids: dict[str, str] = {}

        def remap(old: str | None) -> str | None:
            if not old:
                return old
            if old not in ids:
                ids[old] = new_id(old.split("_", 1)[0] if "_" in old else "obj")
            return ids[old]

        target = fork["id"]
        messages = [json.loads(r[0]) for r in self._conn.execute(
            "SELECT data FROM messages WHERE thread_id = ? ORDER BY created_at, rowid", (thread_id,))]
        runs = [json.loads(r[0]) for r in self._conn.execute(
            "SELECT data FROM runs WHERE thread_id = ? ORDER BY created_at, rowid", (thread_id,))]
        steps = [json.loads(r[0]) for r in self._conn.execute(
            "SELECT data FROM run_steps WHERE thread_id = ? ORDER BY created_at, rowid", (thread_id,))]
        with self.transaction():
            self.put_thread(fork)
            for message in messages:
                message.update(id=remap(message["id"]), thread_id=target,
                               run_id=remap(message.get("run_id")))
                self.put_message(message)
            for run in runs:
                if run["status"] in ACTIVE_STATUSES:
                    continue  # a run still going belongs to its own thread
                run.update(id=remap(run["id"]), thread_id=target)
                meta = dict(run.get("metadata") or {})
                if meta.get("jupyter_runs_prompt"):
                    meta["jupyter_runs_prompt"] = remap(meta["jupyter_runs_prompt"])
                    run["metadata"] = meta
                self.put_run(run)
            for step in steps:
                if step["run_id"] not in ids:
                    continue
                step.update(id=remap(step["id"]), thread_id=target, run_id=remap(step["run_id"]))
                creation = (step.get("step_details") or {}).get("message_creation")
                if creation and creation.get("message_id"):
                    creation["message_id"] = remap(creation["message_id"])
                self.put_step(step)
    # -- one active run per thread, across processes ----------------------------------------

    def thread_runner(self, thread_id: str) -> tuple[str, str] | None:
        """``(run id, owner)`` of a run on the thread that a live *other* process is driving.

        Call it inside a transaction (``BEGIN IMMEDIATE``) that then writes the new run, so the
        check and the claim are one step for every process. Runs of dead owners found on the way
        are marked failed (interrupted): they no longer hold the thread."""
        placeholders = ", ".join("?" * len(ACTIVE_STATUSES))
        rows = self._conn.execute(
            f"SELECT id, owner, data FROM runs WHERE thread_id = ? AND status IN ({placeholders})",
            (thread_id, *ACTIVE_STATUSES),
        ).fetchall()
        dead = []
        for run_id, owner, data in rows:
            if owner == self.owner:
                continue  # ours: the engine's memory knows whether it is still going
            if _owner_alive(owner):
                return run_id, owner
            dead.append((run_id, json.loads(data)))
        if dead:
            self._mark_interrupted(dead)
        return None

    def run_owner(self, run_id: str) -> str | None:
        row = self._conn.execute("SELECT owner FROM runs WHERE id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def owner_alive(self, owner: str | None) -> bool:
        return _owner_alive(owner)

    # -- recovery ---------------------------------------------------------------------------

    def recover_interrupted(self) -> list[str]:
        """Mark runs left unfinished by a process that died as ``failed``; return their ids."""
        placeholders = ", ".join("?" * len(ACTIVE_STATUSES))
        rows = self._conn.execute(
            f"SELECT id, owner, data FROM runs WHERE status IN ({placeholders})", ACTIVE_STATUSES
        ).fetchall()
        dead = [(rid, json.loads(data)) for rid, owner, data in rows if not _owner_alive(owner)]
        if not dead:
            return []
        self._mark_interrupted(dead)
        return [rid for rid, _ in dead]

    def _mark_interrupted(self, dead: list[tuple[str, dict[str, Any]]]) -> None:
        now = int(time.time())
        with self.transaction():
            for run_id, run in dead:
                run.update(status="failed", failed_at=now, required_action=None, expires_at=None,
                           last_error=dict(INTERRUPTED_ERROR))
                self.put_run(run)
                for (data,) in self._conn.execute(
                    "SELECT data FROM run_steps WHERE run_id = ?", (run_id,)
                ).fetchall():
                    step = json.loads(data)
                    if step["status"] == "in_progress":
                        step.update(status="failed", failed_at=now,
                                    last_error=dict(INTERRUPTED_ERROR))
                        self.put_step(step)


def _page_args(limit: Any, order: Any) -> tuple[int, str]:
    try:
        limit = 20 if limit is None else int(limit)
    except (TypeError, ValueError):
        raise BadRequestError(f"Invalid 'limit': expected an integer, got {limit!r}.", param="limit") from None
    if not 1 <= limit <= 100:
        raise BadRequestError(
            f"Invalid 'limit': integer below minimum value or above maximum value (1-100), got {limit}.",
            param="limit",
        )
    order = order or "desc"
    if order not in ("asc", "desc"):
        raise BadRequestError(
            f"Invalid 'order': expected 'asc' or 'desc', got {order!r}.", param="order"
        )
    return limit, order
