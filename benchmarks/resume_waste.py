"""Resume waste: what killing a run costs in model calls. A run against the loopback
OpenAI-compatible server of the tests (tests/fakes.py: real SDK, real HTTP, every request
logged) is SIGKILLed at N random moments (seeded) and resumed each time; the server's request
count is compared with an uninterrupted run's. A request the server already answered and the
call journal had committed before the kill, asked again after it, is a completed call paid
twice: the floor is 0. Requests that were in flight at a kill (not answered yet, or answered
but not yet committed) are asked again by design and are counted apart.

Also checks that the finished ledger equals the uninterrupted one (ignoring recorded_at).
Prints the figures and the machine; exits 1 if a completed call was repeated or the ledgers
differ.

Run: python benchmarks/resume_waste.py [--kills 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from synthetic import ROOT, machine_line

from tests.fakes import FakeProvider  # noqa: E402

SIZES = {"train": 12, "selection": 12, "test": 12}
KEY_ENV = "SKILLOPT_BENCH_KEY"


def config(url: str) -> list[str]:
    args = [
        "--set",
        "env.options.train=12",
        "--set",
        "env.options.selection=12",
        "--set",
        "env.options.test=12",
        "--set",
        "train.batch_size=6",
        "--set",
        "train.workers=3",
        "--set",
        "gradient.workers=2",
    ]
    for role in ("target", "optimizer"):
        args += [
            "--set",
            f"models.{role}.backend=openai",
            "--set",
            f"models.{role}.model=m-{role}",
            "--set",
            f"models.{role}.base_url={url}/v1",
            "--set",
            f"models.{role}.api_key_env={KEY_ENV}",
        ]
    return args


def skillopt(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "skillopt", *args],
        cwd=ROOT,
        env={**os.environ, KEY_ENV: "sk-bench"},
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def events(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT seq, type, version, payload, prev_hash, hash FROM events ORDER BY seq"
        ).fetchall()


def count(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def request_key(model: str, system: str, messages: list[tuple[str, str]]) -> str:
    return json.dumps([model, system, messages])


def answered(db: Path) -> Counter[str]:
    """The requests the call journal holds committed answers for (one per call: a request
    made by two units, e.g. an item rolled out with the same skill in two steps, twice)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT b.text FROM llm_calls c JOIN blobs b ON b.hash = c.request_blob "
            "WHERE c.status = 'ok'"
        ).fetchall()
    out: Counter[str] = Counter()
    for (text,) in rows:
        r = json.loads(text)
        out[request_key(r["model"], r["system"], [(a, b) for a, b in r["messages"]])] += 1
    return out


def repeats(asked: list[str], done: Counter[str], needed: Counter[str]) -> int:
    """Requests asked more often than the run still needed them: `needed` (the uninterrupted
    run's count) minus `done` (answers committed before this process started)."""
    return sum(max(0, n - (needed[k] - done[k])) for k, n in Counter(asked).items())


def logged_key(body: dict[str, Any]) -> str:
    messages = body["messages"]
    rest = [(m["role"], m["content"]) for m in messages[1:]]
    return request_key(body["model"], messages[0]["content"], rest)


def run_to_end(db: Path) -> None:
    proc = skillopt("run", "--db", str(db))
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"run failed: {err}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=int, default=20, help="per request, server side")
    args = parser.parse_args()
    print(machine_line())
    fake = FakeProvider(dict(SIZES), latency_s=args.latency_ms / 1000)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            reference = Path(tmp) / "reference.db"
            init = ["init", "examples/sim.yaml", "--name", "r", *config(fake.url)]
            assert skillopt(*init, "--db", str(reference)).wait() == 0
            run_to_end(reference)
            uninterrupted = len(fake.log)
            needed = Counter(logged_key(r.body) for r in fake.log)
            expected = events(reference)

            db = Path(tmp) / "killed.db"
            assert skillopt(*init, "--db", str(db)).wait() == 0
            rng = random.Random(args.seed)
            targets = sorted(rng.choices(range(2, len(expected) - 2), k=args.kills))
            repeated = 0
            start_log = len(fake.log)
            for target in targets:
                done_before = answered(db)
                seen = len(fake.log)
                proc = skillopt("run", "--db", str(db))
                while count(db) < target and proc.poll() is None:
                    time.sleep(0.002)
                time.sleep(rng.uniform(0, 0.05))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                repeated += repeats(
                    [logged_key(r.body) for r in fake.log[seen:]], done_before, needed
                )
            done_before = answered(db)
            seen = len(fake.log)
            run_to_end(db)
            repeated += repeats([logged_key(r.body) for r in fake.log[seen:]], done_before, needed)
            total = len(fake.log) - start_log
            in_flight = total - uninterrupted - repeated
            same = events(db) == expected
    finally:
        fake.close()
    print(
        f"uninterrupted run: {uninterrupted} model requests; killed {args.kills} times and "
        f"resumed: {total} requests (+{total - uninterrupted}: {in_flight} in flight at a kill, "
        f"asked again; {repeated} completed calls repeated)"
    )
    print(f"finished ledger equals the uninterrupted one: {same}")
    ok = repeated == 0 and same
    print(f"floor: 0 completed calls repeated: {'ok' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
