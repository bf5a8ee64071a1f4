"""A ledger whose schema state is not one of ours (an emptied revision table, a revision that
does not match its tables) gives one line naming the state and the fix, never a traceback."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli

COMMANDS = (["status"], ["status", "--fold"], ["verify"], ["report", "--json"], ["runs"])


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ("DELETE FROM alembic_version", "has skillopt's tables but no schema revision"),
        (
            "UPDATE alembic_version SET version_num = '0003_bench_runs'",
            "its tables are not those of revision 0003_bench_runs",
        ),
    ],
    ids=["empty_revision", "mismatched_revision"],
)
def test_a_foreign_schema_state_is_one_line(
    cli: Cli, small_run: Path, tmp_path: Path, damage: str, named: str
) -> None:
    db = tmp_path / "damaged.db"
    shutil.copy(small_run, db)
    with sqlite3.connect(db) as conn:
        conn.execute(damage)
    for command in COMMANDS:
        res = cli(*command, "--db", str(db))
        assert res.code == 2, (command, res.err)
        assert named in res.err and "restore it from a backup" in res.err, res.err
        assert len(res.err.strip().splitlines()) == 1
