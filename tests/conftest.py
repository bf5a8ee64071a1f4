"""Shared helpers: the real CLI (in-process through typer, or as a subprocess), real ledgers."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from skillopt.commands.cli import app

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sim.yaml"


# A small run: 2 epochs x 2 steps, enough for every stage and edge, a second or two offline.
def sets(*pairs: str) -> list[str]:
    return [x for pair in pairs for x in ("--set", pair)]


# The epoch-boundary mechanisms, off: the plain step loop of the foundation.
PLAIN = sets(
    "optimizer.use_slow_update=false",
    "optimizer.use_meta_skill=false",
    "optimizer.use_step_buffer=false",
)
# Every issue-3 mechanism on, sized so each one fires in a two-epoch run of a few steps.
ALL_MECHANISMS = sets(
    "train.num_epochs=2",
    "optimizer.lr_control_mode=autonomous",
    "optimizer.use_skill_aware_reflection=true",
    "optimizer.skill_aware_consolidate_threshold=1",
    "optimizer.use_slow_update=true",
    "optimizer.use_meta_skill=true",
    "optimizer.slow_update_samples=4",
    "optimizer.longitudinal_pair_policy=changed",
    "models.target.options.base_slip=0.35",  # lapses: the rule is stated but not followed
)
# The other update mode and the gated variants of the slow update and the appendix.
ALL_GATED = ALL_MECHANISMS + sets(
    "optimizer.skill_update_mode=rewrite",
    "optimizer.slow_update_gate_with_selection=true",
    "optimizer.appendix_gated=true",
)

SMALL = [
    "--set",
    "env.options.train=12",
    "--set",
    "env.options.selection=12",
    "--set",
    "env.options.test=12",
    "--set",
    "train.batch_size=6",
]


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


def invoke(*args: str) -> Result:
    """The real typer app in-process (freezegun reaches its clock); module-scoped fixtures
    call it directly, tests take the `cli` fixture."""
    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return Result(res.exit_code, res.stdout, res.stderr)


@pytest.fixture
def cli() -> Cli:
    """Invoke the real typer app in-process (freezegun reaches its clock)."""
    return invoke


def skillopt_process(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """The CLI as a real process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "skillopt", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


def event_rows(db: Path, wall_clock: bool = False) -> list[tuple[Any, ...]]:
    """Every event of every run: (seq, type, version, payload, prev_hash, hash[, recorded_at])."""
    with sqlite3.connect(db) as conn:
        cols = "seq, type, version, payload, prev_hash, hash" + (
            ", recorded_at" if wall_clock else ""
        )
        return conn.execute(f"SELECT {cols} FROM events ORDER BY run_id, seq").fetchall()


def count_events(db: Path, type_: str) -> int:
    """Events of a type, read while another process may be writing (0 before the file exists)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM events WHERE type = ?", (type_,)).fetchone()[
                0
            ]
    except sqlite3.OperationalError:
        return 0


def without_call_ids(value: Any) -> Any:
    """Journal references are run-scoped by design (two runs never share answers)."""
    if isinstance(value, dict):
        return {
            k: without_call_ids(v) for k, v in value.items() if k not in ("call_id", "call_ids")
        }
    if isinstance(value, list):
        return [without_call_ids(v) for v in value]
    return value


@pytest.fixture
def small_run(cli: Cli, tmp_path: Path) -> Path:
    """A finished small run in a fresh ledger."""
    db = tmp_path / "runs.db"
    # The foundation's plain step loop: its seqs are what the fork and forgery tests name.
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "small", *SMALL, *PLAIN).code == 0
    res = cli("run", "--db", str(db))
    assert res.code == 0, res.err
    return db


def copy_into_old_schema(source_db: Path, old: Path, revision: str) -> None:
    """Write the most recent run of `source_db` into a new ledger file at schema `revision`,
    as a skillopt of that schema wrote it: the same events, hashes, stamps and blobs."""
    import sqlalchemy as sa

    from skillopt.ledger.ledger import Ledger

    ledger = Ledger(sa.create_engine(f"sqlite:///{old}"), str(old))
    ledger.upgrade(revision)
    source = Ledger.open(str(source_db))
    run = source.find_run(None)
    stored = source.read(run.id)
    with source.engine.connect() as conn:
        ledger.put_blobs(conn.execute(sa.text("SELECT text FROM blobs")).scalars().all())
    source.close()
    ledger.create_run(run.id, run.name, json.loads(run.config), run.created_at, stored[0].event())
    ledger.append(run.id, 1, [e.event() for e in stored[1:]], [e.recorded_at for e in stored[1:]])
    ledger.close()
    with sqlite3.connect(old) as conn:  # the call journal too, in the columns that schema has
        conn.execute("ATTACH DATABASE ? AS source", (str(source_db),))
        columns = [r[1] for r in conn.execute("PRAGMA main.table_info(llm_calls)")]
        if columns:
            names = ", ".join(columns)
            conn.execute(
                f"INSERT INTO main.llm_calls ({names}) SELECT {names} FROM source.llm_calls "
                "WHERE run_id = ?",
                (run.id,),
            )
