"""Random SIGKILL: kill a real `skillopt run` at seeded random moments, resume, repeat; the
finished ledger equals an uninterrupted run's (events, payloads, hashes; only recorded_at
differs) and its journal holds the same answered calls. The 100-kill version of this check
is `python benchmarks/random_kill.py`."""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path

from tests.conftest import ALL_MECHANISMS, EXAMPLE, SMALL, Cli, event_rows, sets, skillopt_process

# The config of the runs: every mechanism the trainer has, sized small. Add newly built
# mechanisms here so that the kill, Ctrl-C and two-writer checks cover them.
FULL_FEATURED = [
    *SMALL,
    *ALL_MECHANISMS,  # slow update, meta skill, skill-aware appendix, autonomous budget
    *sets(
        "models.optimizer.options.unusable_rate=0.2",  # re-asks and unusable replies
        "evaluation.gate_metric=mixed",
        "train.seed=2",  # a run with a skipped step too (config_version 3's trajectories)
    ),
]
# Latency and workers so that a kill lands inside a stage, with units in flight.
SLOW = [
    "--set",
    "models.target.options.latency_ms=15",
    "--set",
    "models.optimizer.options.latency_ms=40",
    "--set",
    "train.workers=3",
    "--set",
    "gradient.workers=2",
]
KILLS = 10
SEED = 20250107


def last_seq(db: Path) -> int:
    """The ledger's event count, read while another process may be writing."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def answered_calls(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT call_key FROM llm_calls WHERE status = 'ok'").fetchall()
    return sorted(r[0] for r in rows)


def kill_at(db: Path, at_least: int, extra_s: float, timeout_s: float = 90) -> int:
    """Start `skillopt run`, SIGKILL it once the ledger has `at_least` events plus `extra_s`
    seconds; returns the event count at the kill."""
    proc = skillopt_process("run", "--db", str(db), "--run", "r")
    deadline = time.monotonic() + timeout_s
    try:
        while last_seq(db) < at_least:
            if proc.poll() is not None:
                raise AssertionError(f"run ended before {at_least} events: {proc.stderr.read()}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.002)
        time.sleep(extra_s)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    return last_seq(db)


def test_random_kills_resume_to_the_uninterrupted_ledger(cli: Cli, tmp_path: Path) -> None:
    config = [*FULL_FEATURED, *SLOW]
    reference = tmp_path / "reference.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *config).code == 0
    assert cli("run", "--db", str(reference)).code == 0
    expected = event_rows(reference)
    types = {row[1] for row in expected}
    mechanisms = {"slow_update.done", "meta_skill.done", "appendix.flushed", "review.planned"}
    assert {"gate.decided", "step.skipped", "final.evaluated"} | mechanisms <= types, types

    db = tmp_path / "killed.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *config).code == 0
    rng = random.Random(SEED)
    # The last stages run fast (final-test reuse): a kill aimed in the final 30 events may land
    # after the run ended, which would test nothing.
    targets = sorted(rng.sample(range(2, len(expected) - 30), KILLS))
    landed = [kill_at(db, target, rng.uniform(0, 0.08)) for target in targets]
    assert len(set(landed)) >= KILLS // 2, landed  # the kills landed all over the run
    assert landed[-1] < len(expected), "the last kill came after the run had finished"

    finish = skillopt_process("run", "--db", str(db), "--run", "r")
    assert finish.wait(timeout=120) == 0, finish.stderr.read()  # type: ignore[union-attr]
    assert event_rows(db) == expected
    assert answered_calls(db) == answered_calls(reference)  # no call answered twice, none lost
    checked = cli("verify", "--db", str(db), "--json")  # the stored status view re-derived too
    assert checked.code == 0 and checked.json()["runs"][0]["status_view"] == "ok"
    assert cli("status", "--db", str(db)).out == cli("status", "--db", str(db), "--fold").out
    assert cli("replay", "--db", str(db), "--verify").code == 0
