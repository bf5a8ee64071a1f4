"""Exact resume: SIGKILL a real `skillopt run` mid-stage, restart it, and the finished ledger
equals an uninterrupted run's (event types, payloads and hashes; only recorded_at differs)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from skillopt.commands.runner import load_state
from skillopt.ledger.ledger import Ledger
from skillopt.machine.loop import transitions as tr
from tests.conftest import EXAMPLE, SMALL, Cli, count_events, event_rows, skillopt_process

# Latency makes every unit take real time, so a kill lands while a stage is under way.
SLOW = [
    *SMALL,
    "--set",
    "models.target.options.latency_ms=20",
    "--set",
    "models.optimizer.options.latency_ms=60",
    "--set",
    "train.workers=2",
    "--set",
    "gradient.workers=2",
]


def _kill_when(db: Path, type_: str, at_least: int) -> None:
    proc = skillopt_process("run", "--db", str(db), "--run", "r")
    deadline = time.monotonic() + 60
    try:
        while count_events(db, type_) < at_least:
            assert proc.poll() is None, f"run ended before {at_least} {type_}: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "kill point never reached"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _next(db: Path) -> tr.Command | None:
    ledger = Ledger.open(str(db))
    try:
        return tr.next_command(load_state(ledger, ledger.find_run("r").id))
    finally:
        ledger.close()


def test_killed_runs_resume_to_the_uninterrupted_ledger(cli: Cli, tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *SLOW).code == 0
    assert cli("run", "--db", str(reference)).code == 0

    db = tmp_path / "killed.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SLOW).code == 0
    # Baseline has 12 selection rollouts, step 1 rollouts follow (12 more), then reflection.
    mid_stage = []
    for type_, at_least in [
        ("rollout.scored", 5),  # inside the baseline rollout
        ("rollout.scored", 18),  # inside step 1's train rollout
        ("reflection.proposed", 1),  # inside step 1's reflection
        ("rollout.scored", 40),  # later: a candidate evaluation or a later step
        ("reflection.proposed", 6),
    ]:
        _kill_when(db, type_, at_least)
        command = _next(db)
        assert command is not None
        pending = getattr(command, "pending", ())
        mid_stage.append((type(command).__name__, len(pending)))
    # The kills really interrupted rollout and reflect stages with units still to do.
    assert any(name in ("EvaluateBaseline", "RolloutTrain") and n > 0 for name, n in mid_stage), (
        mid_stage
    )
    assert any(name == "Reflect" and n > 0 for name, n in mid_stage), mid_stage

    finish = skillopt_process("run", "--db", str(db), "--run", "r")
    assert finish.wait(timeout=120) == 0, finish.stderr.read()
    assert _next(db) is None
    assert event_rows(db) == event_rows(reference)
    assert cli("replay", "--db", str(db), "--verify").code == 0


def test_two_writers_on_one_run_never_corrupt_it(cli: Cli, tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *SLOW).code == 0
    assert cli("run", "--db", str(reference)).code == 0
    db = tmp_path / "shared.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SLOW).code == 0
    procs = [skillopt_process("run", "--db", str(db), "--run", "r") for _ in range(2)]
    codes = [p.wait(timeout=120) for p in procs]
    errors = [p.stderr.read() for p in procs]
    assert sorted(codes) == [0, 1], errors
    loser = errors[codes.index(1)]
    assert "another process" in loser and len(loser.strip().splitlines()) == 1
    assert event_rows(db) == event_rows(reference)
    assert cli("verify", "--db", str(db)).code == 0
