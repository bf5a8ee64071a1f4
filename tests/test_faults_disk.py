"""Disk and database faults under a real `skillopt run`: a read-only ledger file, a ledger
locked by another process beyond the busy timeout, a full disk (a file size limit). Each ends
with one clear line and exit 1 (no traceback), nothing is committed half (the chain and every
decision verify), and once the fault is gone the run resumes to the uninterrupted ledger."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skillopt.commands.cli import app
from tests.conftest import EXAMPLE, ROOT, SMALL, Cli, event_rows

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[object, ...]]:
    """The uninterrupted run's events (one run for the module)."""
    db = tmp_path_factory.mktemp("reference") / "reference.db"
    runner = CliRunner()
    for args in (
        ["init", str(EXAMPLE), "--db", str(db), "--name", "r", *SMALL],
        ["run", "--db", str(db)],
    ):
        assert runner.invoke(app, args, catch_exceptions=False).exit_code == 0
    return event_rows(db)


def _started(cli: Cli, tmp_path: Path, stages: int = 3) -> Path:
    db = tmp_path / "faulty.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SMALL).code == 0
    assert cli("run", "--db", str(db), "--max-stages", str(stages)).code == 0
    return db


def skillopt(
    *args: str, preexec: Callable[[], None] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skillopt", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        preexec_fn=preexec,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line_failure(res: subprocess.CompletedProcess[str], *words: str) -> None:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1, res.stderr
    assert lines[0].startswith("failed: ledger ") and "Traceback" not in res.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _resumes(cli: Cli, db: Path, reference: list[tuple[object, ...]]) -> None:
    assert cli("verify", "--db", str(db)).code == 0
    assert cli("replay", "--db", str(db), "--verify").code == 0  # nothing committed half
    res = cli("run", "--db", str(db))
    assert res.code == 0, res.err
    assert event_rows(db) == reference
    assert cli("verify", "--db", str(db)).code == 0


def _without_file_privileges() -> None:
    """Root writes any file whatever its mode: drop the capabilities that allow it (in the
    child only; an unprivileged user has none to drop)."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_read_only_ledger(cli: Cli, tmp_path: Path, reference: list[tuple[object, ...]]) -> None:
    db = _started(cli, tmp_path)
    before = event_rows(db)
    db.chmod(0o444)
    try:
        res = skillopt("run", "--db", str(db), preexec=_without_file_privileges)
        _one_line_failure(res, "is read-only", str(db))
        status = skillopt("status", "--db", str(db), preexec=_without_file_privileges)
        assert status.returncode == 0, status.stderr  # reading it still works
    finally:
        db.chmod(0o644)
    assert event_rows(db) == before
    _resumes(cli, db, reference)


def test_a_ledger_locked_by_another_process(
    cli: Cli, tmp_path: Path, reference: list[tuple[object, ...]]
) -> None:
    db = _started(cli, tmp_path)
    before = event_rows(db)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"conn = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
            "conn.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "conn.execute('ROLLBACK')\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"  # type: ignore[union-attr]
        res = skillopt("run", "--db", str(db), env={"SKILLOPT_BUSY_TIMEOUT_S": "0.3"})
        _one_line_failure(res, "is locked by another process", "waited 0.3 s")
    finally:
        holder.communicate("\n", timeout=30)
    assert event_rows(db) == before
    _resumes(cli, db, reference)


def test_a_full_disk(cli: Cli, tmp_path: Path, reference: list[tuple[object, ...]]) -> None:
    db = _started(cli, tmp_path)
    before = event_rows(db)
    limit = db.stat().st_size + 48 * 1024  # room for a few transactions, not for the run

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    res = skillopt("run", "--db", str(db), preexec=small_files)
    _one_line_failure(res, "could not be written" if "I/O" in res.stderr else "cannot grow")
    assert event_rows(db)[: len(before)] == before
    _resumes(cli, db, reference)
