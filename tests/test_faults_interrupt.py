"""Ctrl-C (SIGINT) to a real `skillopt run` inside a stage ends it cleanly: exit 130, one line
that says the recorded events are kept, no traceback; the ledger verifies and a resumed run
finishes to the uninterrupted ledger."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

from tests.conftest import EXAMPLE, Cli, event_rows, skillopt_process
from tests.test_faults_kill import FULL_FEATURED, SLOW, answered_calls, last_seq

INTERRUPTS = 3
SEED = 4242


def test_ctrl_c_mid_stage_ends_cleanly_and_resumes(cli: Cli, tmp_path: Path) -> None:
    config = [*FULL_FEATURED, *SLOW]
    reference = tmp_path / "reference.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *config).code == 0
    assert cli("run", "--db", str(reference)).code == 0
    expected = event_rows(reference)

    db = tmp_path / "interrupted.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *config).code == 0
    rng = random.Random(SEED)
    for target in sorted(rng.sample(range(5, len(expected) - 10), INTERRUPTS)):
        proc = skillopt_process("run", "--db", str(db), "--run", "r")
        deadline = time.monotonic() + 90
        while last_seq(db) < target:
            assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "interrupt point never reached"
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert err.strip().splitlines() == [
            "interrupted: every event recorded so far is kept; `skillopt run` continues"
        ], err
        assert cli("verify", "--db", str(db)).code == 0
        assert cli("replay", "--db", str(db), "--verify").code == 0
    assert last_seq(db) < len(expected)

    assert cli("run", "--db", str(db)).code == 0
    assert event_rows(db) == expected
    assert answered_calls(db) == answered_calls(reference)
