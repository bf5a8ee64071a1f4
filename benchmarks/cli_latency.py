"""CLI latency: wall time of `skillopt status` on a run of 20k events and of `skillopt --help`,
each a fresh process as a user starts it (python -m commands.cli, the console script's
module). Prints medians, where the status time goes (interpreter and imports, reading,
decoding, folding) and the machine; exits 1 if status misses the floor (issue 7: 0.5 s).

Run: python benchmarks/cli_latency.py [--events 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic import ROOT, build, machine_line

FLOOR_S = 0.5  # skillopt status on a 20k-event run

PHASES = """
import sys, time
t0 = time.perf_counter()
import commands.cli
from commands.runner import paused_gc
from ledger.store import Ledger
from machine.reducer import reduce
from machine.views import status_view
t1 = time.perf_counter()
with paused_gc():  # as load_state reads, decodes and folds
    ledger = Ledger.open(sys.argv[1]); run = ledger.find_run(None)
    stored = ledger.read(run.id)
    t2 = time.perf_counter()
    events = [e.event() for e in stored]
    t3 = time.perf_counter()
    state = reduce(events)
    status_view(state)
t4 = time.perf_counter()
print(t1 - t0, t2 - t1, t3 - t2, t4 - t3)
"""


def wall(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=120
    )
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        ((db, _, _),) = build(Path(tmp), [args.events]).values()
        cli = ["-m", "commands.cli"]
        wall(*cli, "status", "--db", str(db))  # warm the OS file cache and .pyc files
        figures = {
            "python -c pass": [wall("-c", "pass") for _ in range(args.repeat)],
            "skillopt --help": [wall(*cli, "--help") for _ in range(args.repeat)],
            f"skillopt status ({args.events} events)": [
                wall(*cli, "status", "--db", str(db)) for _ in range(args.repeat)
            ],
        }
        phases = []
        for _ in range(args.repeat):
            out = subprocess.run(
                [sys.executable, "-c", PHASES, str(db)],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            phases.append([float(x) for x in out.split()])
    for label, times in figures.items():
        print(f"{label:<32}: median {statistics.median(times):.3f} s (min {min(times):.3f})")
    names = ["imports", "open + read", "decode", "fold + status view"]
    medians = [statistics.median(p[i] for p in phases) for i in range(len(names))]
    print(
        "status, where the time goes: "
        + ", ".join(f"{n} {t:.3f} s" for n, t in zip(names, medians, strict=True))
    )
    status = statistics.median(figures[f"skillopt status ({args.events} events)"])
    ok = status <= FLOOR_S
    print(f"floor: status <= {FLOOR_S} s: {'ok' if ok else 'MISSED'} ({status:.3f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
