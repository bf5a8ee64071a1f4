"""The built wheel: `skillopt` alone at its top level, and a venv holding only that wheel (no
checkout on its path) imports skillopt, trains the sim example and runs the bench's dry run
from an unrelated directory."""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        + ["--wheel-dir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (found,) = out.glob("skillopt-*.whl")
    return found


def test_the_wheel_holds_skillopt_alone(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert z.read(top_level).decode().split() == ["skillopt"]
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "skillopt = skillopt.commands.entry:main" in z.read(entry_points).decode()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"skillopt"}
    for shipped in (
        "skillopt/py.typed",
        "skillopt/skills/optimizer/reflect_failure.md",
        "skillopt/skills/closed_loop/bench.yaml",
        "skillopt/migrations/script.py.mako",
        "skillopt/commands/serve/templates/run.html",  # the dashboard's pages, CSS and script
        "skillopt/commands/serve/static/dash.css",
        "skillopt/commands/serve/static/dash.js",
    ):
        assert shipped in names, shipped
    assert not [n for n in names if n.startswith(("skillopt/tests/", "skillopt/benchmarks/"))]
    folders = ("machine", "ledger", "commands", "adapters", "skills", "migrations")
    packages = [p.parent for f in folders for p in (ROOT / f).rglob("__init__.py")]
    missing = [
        str(p.relative_to(ROOT))
        for p in packages
        if f"skillopt/{p.relative_to(ROOT).as_posix()}/__init__.py" not in names
    ]
    assert missing == [], "packages missing from pyproject's list"


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with the wheel installed. Its dependencies are read from this test's own
    site-packages through a path entry (which runs none of that directory's .pth files, so the
    editable install of this checkout stays invisible): no network, and skillopt itself can
    only come from the wheel."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


def _in(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(cwd)},
        timeout=300,
    )


def test_a_venv_with_only_the_wheel_trains_and_benches(fresh: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    (work / "machine").mkdir(parents=True)  # a folder of the user's named like one of ours
    (work / "machine" / "__init__.py").write_text("raise ImportError('the user folder')\n")
    shutil.copy(ROOT / "skills" / "sim" / "initial.md", work / "skill.md")
    config = (ROOT / "examples" / "sim.yaml").read_text("utf-8")
    (work / "sim.yaml").write_text(config.replace("../skills/sim/initial.md", "skill.md"))

    where = _in(fresh, work, "python", "-c", "import skillopt; print(skillopt.__file__)")
    assert where.returncode == 0, where.stderr
    assert str(fresh) in where.stdout and str(ROOT) not in where.stdout

    script = (
        "import skillopt\n"
        "run = skillopt.train('sim.yaml', db='runs.db', overrides={'train.num_epochs': 1})\n"
        "print(run.status()['done'], len(run.skill('best')) > 0)\n"
    )
    trained = _in(fresh, work, "python", "-c", script)
    assert (trained.returncode, trained.stdout.split()) == (0, ["True", "True"]), trained.stderr
    verified = _in(fresh, work, "skillopt", "replay", "--db", "runs.db", "--verify")
    assert verified.returncode == 0, verified.stderr

    bench = _in(fresh, work, "skillopt", "bench", "closed-loop", "--dry-run", "--db", "b.db")
    assert bench.returncode == 0, bench.stdout + bench.stderr
    assert "task" in bench.stdout.lower()
