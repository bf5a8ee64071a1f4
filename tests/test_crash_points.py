"""A crash after any event: truncate a finished ledger after seq k (as a crash right after
that commit leaves it), resume, and the ledger must equal the uninterrupted one. Every k of
a tiny run that still has gates, skips, merges and final tests."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from skillopt.commands.context import Progress
from skillopt.commands.runner import load_state, make_context, run_stage
from skillopt.ledger.ledger import Ledger
from tests.conftest import ALL_GATED, ALL_MECHANISMS, EXAMPLE, PLAIN, Cli, event_rows

TINY = [
    "--set",
    "env.options.train=6",
    "--set",
    "env.options.selection=4",
    "--set",
    "env.options.test=3",
    "--set",
    "train.batch_size=3",
    "--set",
    "gradient.minibatch_size=2",
    "--set",
    "gradient.merge_batch_size=2",
]


def _truncate(db: Path, after_seq: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("DELETE FROM events WHERE seq > ?", (after_seq,))


def _resume(db: Path) -> None:
    ledger = Ledger.open(str(db))
    try:
        run_id = ledger.find_run(None).id
        state = load_state(ledger, run_id)
        ctx = make_context(ledger, run_id, state, Progress())
        while (result := run_stage(ledger, run_id, state, ctx)) is not None:
            state = result.state
    finally:
        ledger.close()


FULL_TYPES = {
    "appendix.flushed",
    "review.planned",
    "slow_update.done",
    "meta_skill.done",
    "gate.decided",
    "final.evaluated",
}
CASES = {
    "plain": (PLAIN, {"step.skipped", "gate.decided", "final.evaluated", "patches.merged"}),
    "all_mechanisms": (ALL_MECHANISMS, FULL_TYPES),
    "all_gated": (ALL_GATED, FULL_TYPES | {"update.gated"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_crash_after_any_event_resumes_to_the_same_ledger(
    cli: Cli, tmp_path: Path, case: str
) -> None:
    extra, wanted = CASES[case]
    reference = tmp_path / "reference.db"
    assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *TINY, *extra).code == 0
    assert cli("run", "--db", str(reference)).code == 0
    expected = event_rows(reference)
    types = {row[1] for row in expected}
    assert wanted <= types
    diverged = []
    for k in range(1, len(expected)):
        work = tmp_path / "work.db"
        shutil.copy(reference, work)
        _truncate(work, k)
        _resume(work)
        if event_rows(work) != expected:
            diverged.append((k, expected[k - 1][1]))
    assert diverged == []
