"""Read commands on a ledger this process cannot write: a read-only file in a read-only
directory, a read-only mount. They open it read-only and print what they print on a writable
copy; they create no file beside it; a run says in one line that it cannot append; what a
read-only open cannot see (an unread write-ahead log, a stale status view, an old schema) is
said, never silently skipped."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import copy_into_old_schema, event_rows
from tests.test_faults_disk import _without_file_privileges, skillopt

# Every command that only reads, with the arguments it needs.
READS = [
    ["status"],
    ["status", "--json"],
    ["runs", "--json"],
    ["events", "--json"],
    ["calls", "--json"],
    ["report", "--md"],
    ["report", "--json"],
    ["why", "best"],
    ["skill", "show", "best"],
    ["verify", "--json"],
    ["replay", "--verify"],
    ["compare", "small", "small"],
]

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: to drop file privileges in a child, or to mount"
)


def _read_all(db: Path, preexec: object = None) -> dict[str, tuple[int, str]]:
    out = {}
    for args in READS:
        res = skillopt(*args, "--db", str(db), preexec=preexec)  # type: ignore[arg-type]
        assert "Traceback" not in res.stderr, res.stderr
        out[" ".join(args)] = (res.returncode, res.stdout)
    return out


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[int, str]]]:
    """A finished run, and what every read command prints of it where it is writable."""
    from typer.testing import CliRunner

    from skillopt.commands.cli import app
    from tests.conftest import EXAMPLE, PLAIN, SMALL

    db = tmp_path_factory.mktemp("writable") / "runs.db"
    runner = CliRunner()
    for args in (
        ["init", str(EXAMPLE), "--db", str(db), "--name", "small", *SMALL, *PLAIN],
        ["run", "--db", str(db)],
    ):
        assert runner.invoke(app, args, catch_exceptions=False).exit_code == 0
    printed = _read_all(db)
    assert all(code == 0 for code, _ in printed.values()), printed
    return db, printed


def _read_only_dir(src: Path, dest: Path) -> Path:
    """A copy of the ledger file alone (as a closed ledger is) in a directory made read-only."""
    dest.mkdir()
    shutil.copy(src, dest / src.name)
    (dest / src.name).chmod(0o444)
    dest.chmod(0o555)
    return dest / src.name


@pytest.fixture
def read_only_dir(tmp_path: Path, writable: tuple[Path, object]) -> Iterator[Path]:
    tmp_path.chmod(0o755)  # the unprivileged child reaches the directory
    db = _read_only_dir(writable[0], tmp_path / "ro")
    yield db
    db.parent.chmod(0o755)


@needs_root
def test_read_commands_on_a_read_only_file_and_directory(
    read_only_dir: Path, writable: tuple[Path, dict[str, tuple[int, str]]]
) -> None:
    before = sorted(p.name for p in read_only_dir.parent.iterdir())
    assert _read_all(read_only_dir, _without_file_privileges) == writable[1]
    assert sorted(p.name for p in read_only_dir.parent.iterdir()) == before  # no -wal, no -shm


@needs_root
def test_a_run_on_a_read_only_ledger_says_so_in_one_line(read_only_dir: Path) -> None:
    for args in (["run"], ["fork", "--at", "3", "--name", "f"], ["db", "refresh-status"]):
        res = skillopt(*args, "--db", str(read_only_dir), preexec=_without_file_privileges)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1 and len(lines) == 1, res.stderr
        assert "is read-only here" in lines[0] and str(read_only_dir) in lines[0], lines


@pytest.fixture
def mounted(tmp_path: Path, writable: tuple[Path, object]) -> Iterator[Path]:
    """The ledger's directory bind-mounted read-only (root can write no file there)."""
    src, mount = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mount.mkdir()
    shutil.copy(writable[0], src / "runs.db")
    done = subprocess.run(["mount", "--bind", str(src), str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        remount = ["mount", "-o", "remount,ro,bind", str(mount)]
        assert subprocess.run(remount, capture_output=True).returncode == 0
        yield mount / "runs.db"
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@needs_root
def test_read_commands_on_a_read_only_mount(
    mounted: Path, writable: tuple[Path, dict[str, tuple[int, str]]]
) -> None:
    assert _read_all(mounted) == writable[1]
    res = skillopt("run", "--db", str(mounted))
    assert res.returncode == 1 and "is read-only here" in res.stderr, res.stderr
    assert sorted(p.name for p in mounted.parent.iterdir()) == ["runs.db"]


@needs_root
def test_an_unreadable_write_ahead_log_is_said(
    tmp_path: Path, writable: tuple[Path, dict[str, tuple[int, str]]]
) -> None:
    """A writer's WAL left beside the file with no -shm, in a read-only directory: SQLite can
    read the file only as it is (immutable); every read command says what it cannot see."""
    tmp_path.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(writable[0], work / "runs.db")
    conn = sqlite3.connect(work / "runs.db")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # the write below stays in the WAL
    conn.execute("UPDATE runs SET name = name")  # same content, new WAL frames
    conn.commit()
    ro = tmp_path / "ro"
    ro.mkdir()
    shutil.copy(work / "runs.db", ro / "runs.db")
    shutil.copy(work / "runs.db-wal", ro / "runs.db-wal")
    conn.close()
    ro.chmod(0o555)
    try:
        res = skillopt("status", "--db", str(ro / "runs.db"), preexec=_without_file_privileges)
        assert res.returncode == 0, res.stderr
        assert res.stdout == writable[1]["status"][1]
        notes = res.stderr.strip().splitlines()
        assert len(notes) == 1 and "write-ahead log (runs.db-wal)" in notes[0], notes
        assert "not shown" in notes[0]
    finally:
        ro.chmod(0o755)


@needs_root
def test_a_stale_status_view_on_a_read_only_ledger_is_said(
    tmp_path: Path, writable: tuple[Path, dict[str, tuple[int, str]]]
) -> None:
    tmp_path.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(writable[0], work / "runs.db")
    with sqlite3.connect(work / "runs.db") as conn:
        conn.execute("UPDATE status_views SET seq = seq - 1")  # a view one event behind
    conn.close()
    db = _read_only_dir(work / "runs.db", tmp_path / "ro")
    try:
        res = skillopt("status", "--db", str(db), preexec=_without_file_privileges)
        assert res.returncode == 0 and res.stdout == writable[1]["status"][1], res.stderr
        (note,) = res.stderr.strip().splitlines()
        last = len(event_rows(writable[0]))
        assert f"a status view of seq {last - 1}" in note and "read-only here" in note, note
        assert "skillopt db refresh-status" in note
    finally:
        db.parent.chmod(0o755)


@needs_root
def test_an_old_schema_read_only_names_the_fix(
    tmp_path: Path, writable: tuple[Path, dict[str, tuple[int, str]]]
) -> None:
    tmp_path.chmod(0o755)
    old = tmp_path / "old.db"
    copy_into_old_schema(writable[0], old, "0004")
    db = _read_only_dir(old, tmp_path / "ro")
    try:
        res = skillopt("report", "--md", "--db", str(db), preexec=_without_file_privileges)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1, res.stderr
        assert "schema revision 0004" in lines[0] and "read-only here" in lines[0]
        assert "skillopt db upgrade" in lines[0]
    finally:
        db.parent.chmod(0o755)
