"""Two `skillopt run` processes on one run, the second started at seeded random moments of
the first (test_resume starts both at once): no duplicate, no gap, never a corrupted chain.
The one that finds the run moved on stops with exit 1 and one line naming the other writer;
the other finishes the run, or both end cleanly when the second came too late to write."""

from __future__ import annotations

import random
import time
from pathlib import Path

from tests.conftest import EXAMPLE, Cli, event_rows, skillopt_process
from tests.test_faults_kill import FULL_FEATURED, SLOW, last_seq

SEED = 99
TRIALS = 2


def test_a_second_writer_started_mid_run(cli: Cli, tmp_path: Path) -> None:
    config = [*FULL_FEATURED, *SLOW]
    reference = tmp_path / "reference.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *config).code == 0
    assert cli("run", "--db", str(reference)).code == 0
    expected = event_rows(reference)
    rng = random.Random(SEED)
    outcomes = []
    for trial in range(TRIALS):
        db = tmp_path / f"shared{trial}.db"
        assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *config).code == 0
        first = skillopt_process("run", "--db", str(db), "--run", "r")
        target = rng.randrange(5, len(expected) // 2)
        deadline = time.monotonic() + 90
        while last_seq(db) < target:
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()  # type: ignore[union-attr]
            time.sleep(0.002)
        second = skillopt_process("run", "--db", str(db), "--run", "r")
        codes = [p.wait(timeout=120) for p in (first, second)]
        errors = [p.stderr.read() for p in (first, second)]  # type: ignore[union-attr]
        outcomes.append(codes)
        assert sorted(codes) in ([0, 1], [0, 0]), errors
        for code, err in zip(codes, errors, strict=True):
            lines = err.strip().splitlines()
            if code == 1:
                assert len(lines) == 1 and lines[0].startswith("failed: run "), err
                assert "another process" in lines[0] and "run again to continue" in lines[0]
            else:
                assert lines == [], err
        if 1 in codes:  # the loser's last appended events are kept; nothing left to do
            assert cli("run", "--db", str(db)).code == 0
        assert event_rows(db) == expected
        assert cli("verify", "--db", str(db)).code == 0
        assert cli("replay", "--db", str(db), "--verify").code == 0
    assert [0, 1] in [sorted(c) for c in outcomes], outcomes  # a conflict really happened
