"""Random SIGKILL, many times: the CI check of tests/test_faults_kill.py with 100 kills by
default. A real `skillopt run` of the full-featured sim config (FULL_FEATURED, offline model
with latency) is killed at seeded random moments and resumed each time; the finished ledger
must equal an uninterrupted run's (events, payloads, hashes; recorded_at aside), the call
journal must hold the same answered calls, and `replay --verify` must pass. Prints where the
kills landed and the machine; exits 1 on any difference.

Run: python benchmarks/random_kill.py [--kills 100] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from synthetic import ROOT, machine_line

from tests.test_faults_kill import FULL_FEATURED, SLOW, answered_calls, kill_at  # noqa: E402


def skillopt(*args: str) -> int:
    return subprocess.run(
        [sys.executable, "-m", "skillopt", *args], cwd=ROOT, capture_output=True
    ).returncode


def rows(db: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT seq, type, version, payload, prev_hash, hash FROM events ORDER BY seq"
        ).fetchall()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(machine_line())
    config = [*FULL_FEATURED, *SLOW]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        reference, db = Path(tmp) / "reference.db", Path(tmp) / "killed.db"
        for path in (reference, db):
            init = ["init", "examples/sim.yaml", "--db", str(path), "--name", "r", *config]
            assert skillopt(*init) == 0
        assert skillopt("run", "--db", str(reference)) == 0
        expected = rows(reference)
        types = {seq: type_ for seq, type_, *_ in expected}
        rng = random.Random(args.seed)
        # kills repeat over the run: after each pass through it, start a fresh killed run
        landed: list[int] = []
        passes = 0
        while len(landed) < args.kills:
            passes += 1
            # not in the last 30 events: the final stages are quick, a kill there may come late
            targets = sorted(rng.sample(range(2, len(expected) - 30), min(20, args.kills)))
            for target in targets[: args.kills - len(landed)]:
                landed.append(kill_at(db, target, rng.uniform(0, 0.08)))
            assert skillopt("run", "--db", str(db)) == 0
            same = rows(db) == expected and answered_calls(db) == answered_calls(reference)
            verified = skillopt("replay", "--db", str(db), "--verify") == 0
            if not (same and verified):
                print(f"pass {passes}: ledger equal {same}, replay --verify {verified}: MISMATCH")
                return 1
            if len(landed) < args.kills:  # a fresh run for the next kills
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
                init = ["init", "examples/sim.yaml", "--db", str(db), "--name", "r", *config]
                assert skillopt(*init) == 0
    after = collections.Counter(types.get(seq, "run.created") for seq in landed)
    print(
        f"{len(landed)} kills in {passes} runs of {len(expected)} events, "
        f"{time.perf_counter() - started:.0f} s; each resumed to the uninterrupted ledger "
        "(events, hashes, journal) and replay --verify passed"
    )
    print("last event before each kill: " + ", ".join(f"{t} {n}" for t, n in after.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
