"""Read latency of the embedded engine while another process holds the store's write lock.

A second process runs ``BEGIN IMMEDIATE`` and sleeps (``tests/lock_holder.py``); meanwhile one
thread keeps writing (``messages.create``, each waiting for the lock) and the main thread keeps
reading (``threads.retrieve``), timing each read. WAL readers never need the lock, so a read only
waits if the engine's loop is stuck inside a waiting write.

ours: the engine as it is (the loop never sleeps in SQLite; writes wait by retrying, see
``backends/local/writes.py``). baseline: the same engine with the loop connection's
``busy_timeout`` set back to 5000 ms, i.e. the design before: a write sleeps inside SQLite on the
loop, and every request queues behind it.

    python bench/store_lock.py [--quick]
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from bench._common import Row, main, percentile


def _measure(folder: Path, hold: float, blocking: bool) -> list[float]:
    import jupyter_runs as jr
    from tests.lock_holder import LockHolder

    path = folder / f"{'blocking' if blocking else 'ours'}.sqlite3"
    client = jr.Client(store=str(path))
    try:
        if blocking:
            client._async.backend.store.connection.execute("PRAGMA busy_timeout = 5000")
        thread = client.threads.create()
        client.threads.retrieve(thread.id)  # warm up the portal
        latencies: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            while not stop.is_set():
                try:
                    client.messages.create(thread.id, role="user", content="w")
                except Exception:  # a write that gave up: the figure is about the reads
                    pass

        holder = LockHolder(path).start()
        worker = threading.Thread(target=writer, daemon=True)
        worker.start()
        time.sleep(0.05)  # the first write is waiting for the lock
        end = time.monotonic() + hold
        try:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                client.threads.retrieve(thread.id)
                latencies.append(time.perf_counter() - t0)
        finally:
            holder.release()
            stop.set()
            worker.join(30)
        return latencies
    finally:
        client.close()


def run(quick: bool = False) -> list[Row]:
    hold = 1.0 if quick else 4.0
    with tempfile.TemporaryDirectory() as tmp:
        ours = _measure(Path(tmp), hold, blocking=False)
        base = _measure(Path(tmp), hold, blocking=True)
    rows = []
    for q in (50, 99):
        o, b = percentile(ours, q) * 1e3, percentile(base, q) * 1e3
        rows.append(Row(f"read p{q} while another process holds the write lock {hold:g} s "
                        f"({len(ours)} / {len(base)} reads)", o, b, "ms",
                        "< 50 ms" if q == 99 else "-", o < 50 if q == 99 else None,
                        "write sleeping in SQLite on the loop"))
    return rows


if __name__ == "__main__":
    main(run, __doc__)
