"""The dependency rule of ARCHITECTURE.md is checked by import-linter (pyproject's contracts,
run by scripts/test.sh): it passes on this tree and fails the build on a tree that breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
FOLDERS = ("machine", "ledger", "commands", "adapters", "skills", "migrations")


def _lint(package_parent: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [str(LINT), "--no-cache", str(config)],
        capture_output=True,
        text=True,
        env=env,
        cwd=package_parent,
        timeout=300,
    )


def _copy(tmp_path: Path) -> Path:
    """This tree's package, as `skillopt` in a folder of its own (found before the install)."""
    package = tmp_path / "skillopt"
    package.mkdir()
    shutil.copy(ROOT / "__init__.py", package / "__init__.py")
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, package / folder, ignore=shutil.ignore_patterns("*.json"))
    return package


def test_the_contracts_hold_on_this_tree(tmp_path: Path) -> None:
    _copy(tmp_path)
    res = _lint(tmp_path, ROOT / "pyproject.toml")
    assert res.returncode == 0, res.stdout[-3000:]
    assert " 0 broken." in res.stdout


def test_a_forbidden_import_breaks_the_build(tmp_path: Path) -> None:
    package = _copy(tmp_path)
    scoring = package / "machine" / "decisions" / "scoring.py"
    scoring.write_text(scoring.read_text() + "\nimport sqlite3  # I/O in the pure core\n")
    bench = package / "ledger" / "tables.py"
    bench.write_text(bench.read_text() + "\nfrom skillopt.commands import errors  # upward\n")
    res = _lint(tmp_path, ROOT / "pyproject.toml")
    assert res.returncode == 1, res.stdout[-3000:]
    assert "machine is pure" in res.stdout and "BROKEN" in res.stdout
    assert "skillopt.machine.decisions.scoring -> sqlite3" in res.stdout
    assert "skillopt.ledger.tables -> skillopt.commands.errors" in res.stdout
