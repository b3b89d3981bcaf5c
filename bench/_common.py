"""The harness every benchmark shares: rows of (figure, ours, baseline, ratio, goal, met?).

Why ratios: the machine is small (2 cores) and noisy, so an absolute number from one run means
little; ours and the baseline are measured in the same process, interleaved, best of N, and the
table shows both and their ratio. Nothing here asserts anything: a missed goal is a row that says
``no``, never an exception.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/x.py` from a fresh clone without `pip install -e .`
    sys.path.insert(0, str(ROOT))

HEADER = ("figure", "ours", "baseline", "ratio", "goal", "met?")


@dataclass
class Row:
    """One figure. ``ours`` and ``baseline`` are numbers in ``unit``; ``goal`` is the readable goal
    and ``met`` whether ours reached it (``None`` when the figure has no goal, e.g. context)."""

    figure: str
    ours: float
    baseline: float
    unit: str
    goal: str
    met: bool | None
    baseline_name: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")

    def cells(self) -> tuple[str, ...]:
        base = f"{fmt(self.baseline)} {self.unit}"
        if self.baseline_name:
            base += f" ({self.baseline_name})"
        met = "-" if self.met is None else ("yes" if self.met else "NO")
        return (self.figure, f"{fmt(self.ours)} {self.unit}", base, f"{self.ratio:.3g}x", self.goal, met)


def fmt(value: float) -> str:
    """Three significant digits, thousands separated, no scientific notation for normal sizes."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.2f}"
    return f"{value:.3g}"


def machine() -> str:
    return (f"machine: {os.cpu_count()} cores (os.cpu_count()), Python {platform.python_version()}, "
            f"{platform.system()} {platform.machine()}")


def table(rows: Iterable[Row]) -> str:
    cells = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    lines = [" | ".join(c[i].ljust(widths[i]) for i in range(len(HEADER))).rstrip() for c in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Smallest wall time of ``repeat`` calls of ``fn`` (the least disturbed run) and its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Best time of each function, run in turns so drift in machine load hits all alike; every
    function gets the same ``repeat``. ``clock=time.process_time`` measures CPU time (all
    threads of this process), which other work on a shared machine disturbs less than wall time."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            gc.collect()
            start = clock()
            fn()
            best[name] = min(best[name], clock() - start)
    return best


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def main(run: Callable[[bool], list[Row]], doc: str | None) -> None:
    """The CLI of one benchmark script: ``--quick`` is the tiny smoke-test size."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the smoke test")
    args = parser.parse_args()
    print(machine())
    print(table(run(args.quick)), flush=True)
