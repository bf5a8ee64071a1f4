"""Kill-and-resume with every issue-3 mechanism on: SIGKILL a real `skillopt run` while the
optimizer is answering inside the slow update, the meta skill and an appendix consolidation;
the finished ledger equals an uninterrupted run's, and no completed model call was made twice."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

from skillopt.commands.runner import load_state
from skillopt.ledger.ledger import Ledger
from skillopt.ledger.stored_status import stored_status
from skillopt.machine.loop import transitions as tr
from skillopt.machine.reports.status_format import STATUS_FORMAT
from tests.conftest import ALL_MECHANISMS, EXAMPLE, SMALL, Cli, event_rows, sets, skillopt_process

# Optimizer calls take long enough for a kill to land while one is in flight.
SLOW = [
    *SMALL,
    *ALL_MECHANISMS,
    *sets(
        "models.optimizer.options.latency_ms=150",
        "models.target.options.latency_ms=2",
        "train.workers=2",
        "gradient.workers=2",
    ),
]


def _next(db: Path) -> tr.Command | None:
    ledger = Ledger.open(str(db))
    try:
        return tr.next_command(load_state(ledger, ledger.find_run("r").id))
    finally:
        ledger.close()


def _about_to(db: Path, wanted: tr.Command) -> bool:
    """Whether `wanted` is the next stage, by the status view the runner stores with every
    append: read with sqlite3 in a millisecond, where a fold per poll lagged a loaded run by
    more than the call the kill must land in. `_kill_inside` checks by folding afterwards."""
    view = stored_status(str(db), "r", STATUS_FORMAT)
    if view is None or view["phase"] != wanted.stage:
        return False
    where = "step" if isinstance(wanted, tr.FlushAppendix) else "epoch"
    return bool(view[where] == getattr(wanted, where))


def _kill_inside(db: Path, wanted: tr.Command) -> None:
    """Run until `wanted` is the next stage, let its optimizer call start, SIGKILL."""
    proc = skillopt_process("run", "--db", str(db), "--run", "r")
    deadline = time.monotonic() + 90
    try:
        while not _about_to(db, wanted):
            assert proc.poll() is None, f"run ended before {wanted}: {proc.stderr.read()}"
            assert time.monotonic() < deadline, f"{wanted} never came"
            time.sleep(0.005)
        time.sleep(0.06)  # inside the 150 ms call
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert _next(db) == wanted, "the kill landed after the stage was recorded"


def _completed_calls(db: Path) -> list[tuple[str, str, str, int]]:
    with sqlite3.connect(db) as conn:
        return sorted(
            conn.execute(
                "SELECT stage, unit, request_hash, call_index FROM llm_calls WHERE status = 'ok'"
            ).fetchall()
        )


def _consolidated_step(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM events WHERE type = 'appendix.flushed'")
        steps = [p["step"] for (raw,) in rows if (p := json.loads(raw))["consolidation"]]
    assert steps, "the reference run never consolidated its appendix"
    return steps[0]


def test_kills_inside_epoch_memory_calls_resume_exactly(cli: Cli, tmp_path: Path) -> None:
    reference = tmp_path / "reference.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *SLOW).code == 0
    assert cli("run", "--db", str(reference)).code == 0
    step = _consolidated_step(reference)

    db = tmp_path / "killed.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SLOW).code == 0
    for wanted in (tr.FlushAppendix(step), tr.SlowUpdate(2), tr.MetaSkill(2)):
        _kill_inside(db, wanted)

    finish = skillopt_process("run", "--db", str(db), "--run", "r")
    assert finish.wait(timeout=180) == 0, finish.stderr.read()
    assert _next(db) is None
    assert event_rows(db) == event_rows(reference)
    # The killed calls never completed, so nothing completed was paid for twice.
    assert _completed_calls(db) == _completed_calls(reference)
    assert cli("replay", "--db", str(db), "--verify").code == 0
