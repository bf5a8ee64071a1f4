"""Concurrent rollouts: the baseline evaluation of 64 selection items by the real runner (each
target call through the call journal, each rollout.scored committed in order), with 100 ms
of injected model latency (the offline model's latency_ms), at workers 1, 8 and 32.
Throughput as a share of the ideal, ideal = ceil(64 / workers) x 100 ms: what the latency
alone allows. Prints medians and the machine; exits 1 if the share at 8 workers is under the
floor (issue 7: 90%).

Run: python benchmarks/concurrency.py [--workers 1 8 32] [--repeat 3] [--items 64]
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic import ROOT, machine_line

from skillopt.commands.context import Progress
from skillopt.commands.runner import load_state, make_context, run_stage
from skillopt.ledger.ledger import Ledger

LATENCY_S = 0.1
FLOOR = 0.90  # share of the ideal at 8 workers


def baseline_seconds(folder: Path, items: int, workers: int) -> float:
    """Wall seconds of the baseline stage (the run's dataset stage done first, untimed)."""
    db = folder / f"w{workers}.db"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "skillopt",
            "init",
            "examples/sim.yaml",
            "--db",
            str(db),
            "--name",
            "c",
            "--set",
            f"env.options.selection={items}",
            "--set",
            f"train.workers={workers}",
            "--set",
            f"models.target.options.latency_ms={int(LATENCY_S * 1000)}",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    ledger = Ledger.open(str(db))
    try:
        run_id = ledger.find_run(None).id
        state = load_state(ledger, run_id)
        ctx = make_context(ledger, run_id, state, Progress())
        loaded = run_stage(ledger, run_id, state, ctx)
        assert loaded is not None and loaded.command.stage == "dataset"
        start = time.perf_counter()
        result = run_stage(ledger, run_id, loaded.state, ctx)
        seconds = time.perf_counter() - start
        assert result is not None and result.command.stage == "baseline"
        assert len(result.appended) == items + 1  # every rollout, then baseline.evaluated
        return seconds
    finally:
        ledger.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    shares: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in args.workers:
            times = [baseline_seconds(Path(tmp), args.items, workers) for _ in range(args.repeat)]
            median = statistics.median(times)
            ideal = math.ceil(args.items / workers) * LATENCY_S
            shares[workers] = ideal / median
            print(
                f"workers {workers:>2}: {args.items / median:>6.1f} rollouts/s, median "
                f"{median:.3f} s (ideal {ideal:.2f} s): {shares[workers]:.0%} of the ideal"
            )
    if 8 not in shares:
        return 0
    ok = shares[8] >= FLOOR
    print(f"floor: >= {FLOOR:.0%} of the ideal at 8 workers: {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
