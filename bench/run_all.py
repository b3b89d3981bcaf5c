"""Every benchmark of bench/, one table: figure, ours, baseline, ratio, goal, met?

Each figure is measured against its baseline in the same run (see bench/README.md); nothing here
asserts a time. ``--quick`` runs every benchmark at a tiny size (the smoke test uses it).

    python bench/run_all.py [--quick] [--only events,transport,...]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

# the repo root, for `bench.*` and `jupyter_runs` from a fresh clone
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Row, machine, table

BENCHES = ("events", "transport", "render", "engine", "tools", "scale", "store_lock")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    parser.add_argument("--only", default="", help="comma-separated subset of " + ", ".join(BENCHES))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(BENCHES)
    rows: list[Row] = []
    failed = []
    start = time.perf_counter()
    print(machine(), flush=True)
    for name in names:
        t0 = time.perf_counter()
        try:
            rows += importlib.import_module(f"bench.{name}").run(args.quick)
        except Exception:  # one broken benchmark must not hide the others' figures
            failed.append(name)
            traceback.print_exc()
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    print(table(rows))
    met = [r.met for r in rows if r.met is not None]
    print(f"{sum(met)}/{len(met)} goals met; {len(rows)} figures in {time.perf_counter() - start:.0f} s"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
