"""Replay speed: read, decode, fold (reduce) and render the report of runs of 20k and 200k
events (synthetic runs built from a real one, see benchmarks/synthetic.py), in events per
second. Prints the median of several repetitions and the machine; exits 1 if folding is
slower than the floor (issue 7: 100k events/s).

Folding and rendering are timed in CPU seconds of this process (time.process_time): they are
single-threaded pure functions, and on a shared machine wall time measures the neighbours
too; wall-clock rates are printed next to them. The fold is timed as the CLI runs it (the
cyclic garbage collector paused, commands/runner.paused_gc: a fold makes no reference
cycles) and, for comparison, with the collector on; the floor applies to the first.

Run: python benchmarks/replay.py [--sizes 20000 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthetic import build, machine_line

from skillopt.commands.runner import fold, paused_gc
from skillopt.ledger.ledger import Ledger
from skillopt.machine.loop.reducer import reduce
from skillopt.machine.reports.views import render_markdown, report_data

FLOOR = 100_000  # events folded per second


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """(median CPU s, median wall s, last result)."""
    cpu, wall, result = [], [], None
    for _ in range(repeat):
        result = None
        gc.collect()
        c, w = time.process_time(), time.perf_counter()
        result = fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - w)
    return statistics.median(cpu), statistics.median(wall), result


def paused(fn: Callable[[], Any]) -> Any:
    with paused_gc():
        return fn()


def measure(db: Path, run_id: str, repeat: int) -> tuple[int, float, str]:
    """Time each phase of a replay of one run; prints a line; (events, fold rate, line)."""
    ledger = Ledger.open(str(db))
    try:
        _, read_s, stored = timed(lambda: ledger.read(run_id), repeat)
        n = len(stored)
        decode_cpu, _, events = timed(lambda: [e.event() for e in stored], repeat)
        fold_cpu, fold_wall, state = timed(lambda: paused(lambda: reduce(events)), repeat)
        gc_cpu, _, _ = timed(lambda: reduce(events), repeat)
        cli_cpu, _, _ = timed(lambda: fold(stored), repeat)  # decode + fold, as load_state
        texts = ledger.get_blobs([state.best_hash, state.initial_hash])
        render_cpu, _, text = timed(lambda: render_markdown(report_data(state), texts), repeat)
    finally:
        ledger.close()
    rate = n / fold_cpu
    line = (
        f"{n:>7} events: fold {rate:>9,.0f} ev/s ({fold_cpu:.3f} s CPU; wall "
        f"{n / fold_wall:,.0f} ev/s; collector on {n / gc_cpu:,.0f} ev/s) | report "
        f"{n / render_cpu:>9,.0f} ev/s ({render_cpu:.3f} s, {len(text):,} chars) | read "
        f"{n / read_s:,.0f} ev/s | decode {n / decode_cpu:,.0f} ev/s | decode + fold "
        f"{n / cli_cpu:,.0f} ev/s"
    )
    return n, rate, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(machine_line())
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        runs = build(Path(tmp), args.sizes)
        print(f"built {len(runs)} synthetic ledgers in {time.perf_counter() - start:.1f} s")
        for db, _, run_id in runs.values():
            _, rate, line = measure(db, run_id, args.repeat)
            ok &= rate >= FLOOR
            print(line)
    print(
        f"floor: fold >= {FLOOR:,} events/s at every size: {'ok' if ok else 'MISSED'} "
        f"(medians of {args.repeat})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
