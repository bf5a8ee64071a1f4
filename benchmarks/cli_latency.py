"""CLI latency: wall time of `skillopt status` on a run of 20k events and of `skillopt --help`,
each a fresh process as a user starts it (python -m skillopt, as the console script runs its
module). `status` answers from the status view stored with the run's last event (the synthetic
run is appended as the runner appends); `status --fold` folds the events, as status does on a
ledger without a current view. Prints medians, where the folding path's time goes
(interpreter and imports, reading, decoding, folding) and the machine; exits 1 if status
misses the floor (issue 7: 0.5 s) or the two ways print different bytes.

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
import skillopt.commands.cli
from skillopt.commands.runner import paused_gc
from skillopt.ledger.ledger import Ledger
from skillopt.machine.loop.reducer import reduce
from skillopt.machine.reports.views import status_view
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


def output(*args: str) -> str:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, check=True, capture_output=True, text=True, timeout=120
    ).stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        ((db, _, _),) = build(Path(tmp), [args.events]).values()
        cli = ["-m", "skillopt"]
        status = [*cli, "status", "--db", str(db)]
        wall(*status, "--fold")  # warm the OS file cache and .pyc files
        same = all(
            output(*status, *flags) == output(*status, "--fold", *flags)
            for flags in ([], ["--json"])
        )
        figures = {
            "python -c pass": [wall("-c", "pass") for _ in range(args.repeat)],
            "skillopt --help": [wall(*cli, "--help") for _ in range(args.repeat)],
            f"skillopt status ({args.events} events)": [wall(*status) for _ in range(args.repeat)],
            "skillopt status --fold": [wall(*status, "--fold") for _ in range(args.repeat)],
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
        "status --fold, where the time goes: "
        + ", ".join(f"{n} {t:.3f} s" for n, t in zip(names, medians, strict=True))
    )
    status_s = statistics.median(figures[f"skillopt status ({args.events} events)"])
    ok = status_s <= FLOOR_S
    print(f"floor: status <= {FLOOR_S} s: {'ok' if ok else 'MISSED'} ({status_s:.3f} s)")
    print(f"status and status --fold print the same (text and --json): {'yes' if same else 'NO'}")
    return 0 if ok and same else 1


if __name__ == "__main__":
    sys.exit(main())
