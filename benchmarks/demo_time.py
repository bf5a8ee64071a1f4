"""How long the offline demo takes, end to end (init -> run -> report), as a user runs it.

Prints the median of several runs and the machine; exits 1 if the median misses the floor
(issue 2: under 60 s on 2 cores). Run: python benchmarks/demo_time.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOOR_S = 60.0


def skillopt(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "skillopt", *args],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def one_run() -> float:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "demo.db")
        start = time.perf_counter()
        skillopt("init", "examples/sim.yaml", "--db", db, "--name", "demo")
        skillopt("run", "--db", db)
        skillopt("report", "--db", db, "--md", "-o", str(Path(tmp) / "report.md"))
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = [one_run() for _ in range(args.repeat)]
    median = statistics.median(times)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"demo (init + run + report): median {median:.2f} s over {len(times)} runs "
        f"(min {min(times):.2f}, max {max(times):.2f}); floor {FLOOR_S:.0f} s"
    )
    return 0 if median < FLOOR_S else 1


if __name__ == "__main__":
    sys.exit(main())
