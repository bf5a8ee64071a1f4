"""The offline demo really learns, and a run is a pure function of its config."""

from __future__ import annotations

import shutil
from pathlib import Path

from freezegun import freeze_time

from tests.conftest import EXAMPLE, SMALL, Cli, event_rows


def test_demo_config_learns_with_a_reject(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "demo.db")
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "demo").code == 0
    assert cli("run", "--db", db, "--run", "demo").code == 0
    report = cli("report", "--db", db, "--json").json()
    assert report["final"]["done"] is True
    assert report["final"]["best_score"] >= report["baseline"]["gate_score"] + 0.3
    actions = [s["action"] for s in report["steps"]]
    assert "reject" in actions
    assert len(actions) == report["totals"]["steps"] == 6
    tests = report["final"]["test"]
    assert set(tests) == {"initial", "best", "final"}
    assert tests["best"]["hard"] > tests["initial"]["hard"]
    assert set(tests["best"]["buckets"]) >= {"date", "currency", "overall"}


def test_two_runs_of_one_config_write_identical_ledgers(cli: Cli, tmp_path: Path) -> None:
    ledgers = []
    for name in ("a", "b"):
        db = tmp_path / f"{name}.db"
        with freeze_time("2026-05-01T12:00:00Z"):
            assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "same", *SMALL).code == 0
            assert cli("run", "--db", str(db)).code == 0
        ledgers.append(event_rows(db, wall_clock=True))
    assert ledgers[0] == ledgers[1]
    assert len(ledgers[0]) > 100


def test_report_and_replay_are_pure(cli: Cli, small_run: Path, tmp_path: Path) -> None:
    md1 = cli("report", "--db", str(small_run), "--md").out
    md2 = cli("report", "--db", str(small_run), "--md").out
    copy = tmp_path / "elsewhere" / "copy.db"
    copy.parent.mkdir()
    shutil.copy(small_run, copy)
    md3 = cli("report", "--db", str(copy), "--md").out
    assert md1 == md2 == md3
    assert "## Steps" in md1 and "## Best skill" in md1
    js = [cli("report", "--db", str(p), "--json").out for p in (small_run, copy)]
    assert js[0] == js[1]
    written = []
    for db, folder in ((small_run, "one"), (copy, "two")):
        (tmp_path / folder).mkdir()
        out = tmp_path / folder / "r.md"
        assert cli("report", "--db", str(db), "--md", "-o", str(out)).code == 0
        written.append((out.read_bytes(), (tmp_path / folder / "r.scores.svg").read_bytes()))
    assert written[0] == written[1]
    assert written[0][0].decode() == md1.replace(
        "\n\n4 step(s)", "\n\n![Selection score per step](r.scores.svg)\n\n4 step(s)", 1
    )
    status = cli("status", "--db", str(small_run), "--json").json()
    replayed = cli("replay", "--db", str(copy), "--json").json()
    assert replayed == status


def test_replay_until_folds_a_prefix(cli: Cli, small_run: Path) -> None:
    early = cli("replay", "--db", str(small_run), "--until", "3", "--json").json()
    assert early["events"] == 3
    assert early["phase"] == "baseline"
    assert early["done"] is False
    full = cli("replay", "--db", str(small_run), "--verify", "--json").json()
    assert full["verified"] is True
    for check in ("hash_chain", "aggregates", "candidates", "gate_verdicts", "budgets"):
        assert full["checks"][check] > 0, check
