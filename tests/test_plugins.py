"""Plugins: a third-party environment and model backend, found through entry points, run end to
end through the real CLI. The example plugin (examples/plugin) is made visible to a subprocess
in two ways, neither of which touches the project's venv: its entry points declared by a
`*.dist-info/entry_points.txt` on PYTHONPATH (cheap), and a real `pip install --target` into a
temporary directory (the plugin's own tests then run against that install)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pytest

from skillopt.adapters.registry import env_names
from tests.conftest import ROOT, Cli

PLUGIN = ROOT / "examples" / "plugin"
CONFIG = PLUGIN / "acronym.yaml"


def entry_points_txt() -> str:
    """The plugin's entry points as an installer writes them, from its pyproject.toml."""
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text("utf-8"))["project"]
    groups = project["entry-points"]
    assert set(groups) == {"skillopt.environments", "skillopt.models"}
    return "".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in names.items()) + "\n"
        for group, names in groups.items()
    )


def run(pythonpath: list[Path], *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*pythonpath, ROOT])}
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def skillopt(pythonpath: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    return run(pythonpath, "-m", "skillopt", *args)


@pytest.fixture
def declared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The plugin's source plus a dist-info that declares its entry points, on sys.path (the
    in-process CLI sees them as a subprocess would see them on PYTHONPATH)."""
    site = tmp_path / "declared"
    info = site / "skillopt_acronym-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: skillopt-acronym\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(entry_points_txt())
    for path in (site, PLUGIN / "src"):
        monkeypatch.syspath_prepend(str(path))
    return [PLUGIN / "src", site]


def test_a_config_naming_the_plugin_env_and_model_runs_end_to_end(
    cli: Cli, declared: list[Path], tmp_path: Path
) -> None:
    db = str(tmp_path / "plugin.db")
    res = cli("init", str(CONFIG), "--db", db, "--name", "acronym")
    assert res.code == 0, res.err
    res = cli("run", "--db", db)
    assert res.code == 0, res.err
    report = cli("report", "--db", db, "--json").json()
    assert report["dataset"]["env"] == "acronym"
    assert report["baseline"]["hard"] == 0.0 and report["baseline"]["soft"] == 0.5
    assert report["steps"][0]["action"] == "accept_new_best"
    assert report["final"]["best_score"] == 1.0
    assert report["final"]["test"]["best"]["hard"] == 1.0
    assert report["final"]["test"]["initial"]["hard"] == 0.0
    res = cli("replay", "--db", db, "--verify", "--json")
    assert res.code == 0 and res.json()["verified"] is True
    calls = cli("calls", "--db", db, "--json").json()
    assert "initials-v1" in json.dumps(calls)  # the plugin model played the target


def test_without_the_plugin_its_names_are_unknown(cli: Cli, tmp_path: Path) -> None:
    if "acronym" in env_names():
        pytest.skip("the example plugin is installed in this environment")
    db = str(tmp_path / "x.db")
    res = cli("init", str(CONFIG), "--db", db)
    assert res.code == 2
    assert "env.name: unknown environment 'acronym' (known: " in res.err
    assert "qa" in res.err and "sim" in res.err
    assert not Path(db).exists()


def test_a_bad_plugin_option_is_named(cli: Cli, declared: list[Path], tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    res = cli("init", str(CONFIG), "--db", db, "--set", "env.options.size=3")
    assert res.code == 2
    assert (
        res.err.strip() == "error: env.options.size: unknown option (known: selection, test, train)"
    )
    res = cli("init", str(CONFIG), "--db", db, "--set", "models.target.backend=nope")
    assert res.code == 2 and "known: anthropic, azure, initials, offline" in res.err


def _pip_build_args() -> list[str]:
    """Build offline with the venv's setuptools when it can make wheels; otherwise in pip's
    isolated build environment (which fetches setuptools from the package index)."""
    try:
        have = tuple(int(p) for p in version("setuptools").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return []
    try:
        version("wheel")
        has_wheel = True
    except PackageNotFoundError:
        has_wheel = False
    return ["--no-build-isolation"] if have >= (70, 1) or has_wheel else []


def test_the_plugin_installs_for_real_and_passes_its_own_tests(tmp_path: Path) -> None:
    source = tmp_path / "plugin"  # a copy: the build writes build/ and *.egg-info into its tree
    shutil.copytree(
        PLUGIN, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = tmp_path / "site"
    pip = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"]
    res = run([], *pip, *_pip_build_args(), "--no-deps", "--target", str(site), str(source))
    assert res.returncode == 0, res.stderr
    (info,) = site.glob("skillopt_acronym-*.dist-info")
    assert (info / "entry_points.txt").read_text().split() == entry_points_txt().split()
    res = run(
        [site], "-m", "pytest", "-q", "-p", "no:cacheprovider", str(source / "tests"), cwd=source
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 passed" in res.stdout
    db = str(tmp_path / "installed.db")
    res = skillopt([site], "init", str(CONFIG), "--db", db, "--json")
    assert res.returncode == 0, res.stderr
    created: dict[str, Any] = json.loads(res.stdout)["event"]["payload"]
    assert created["config"]["env"]["name"] == "acronym"
    assert created["config"]["models"]["target"]["backend"] == "initials"
