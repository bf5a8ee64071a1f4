"""The Python API: `skillopt.train`, `skillopt.open`, `Run`; the same facts and bytes as the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import skillopt
from tests.conftest import EXAMPLE, PLAIN, SMALL, Cli, event_rows

SIM_SKILL = "../skills/sim/initial.md"  # env.skill_init of examples/sim.yaml
OVERRIDES = [a for a in [*SMALL, *PLAIN] if a != "--set"]


def test_train_runs_to_the_end_and_reads_like_the_cli(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "api.db"
    run = skillopt.train(EXAMPLE, db=db, name="a", overrides=OVERRIDES)
    assert (run.name, run.status()["done"]) == ("a", True)
    assert run.status() == cli("status", "--db", str(db), "--run", "a", "--json").json()
    assert run.skill("best") == cli("skill", "show", "best", "--db", str(db)).out
    assert run.skill("initial") == (EXAMPLE.parent / SIM_SKILL).read_text("utf-8")
    for fmt, flag in (("md", "--md"), ("json", "--json"), ("html", "--html")):
        assert run.report(fmt) == cli("report", "--db", str(db), flag).out  # type: ignore[arg-type]
    gates = run.events("gate.decided")
    assert gates and all(e["type"] == "gate.decided" for e in gates)
    assert [e["seq"] for e in run.events()] == list(range(1, len(run.events()) + 1))
    assert cli("replay", "--db", str(db), "--verify").code == 0


def test_a_run_trained_in_pieces_equals_one_trained_at_once(tmp_path: Path) -> None:
    whole, pieces = tmp_path / "whole.db", tmp_path / "pieces.db"
    skillopt.train(EXAMPLE, db=whole, name="r", overrides=OVERRIDES)
    run = skillopt.train(EXAMPLE, db=pieces, name="r", overrides=OVERRIDES, max_stages=7)
    assert run.status()["done"] is False
    while not run.status()["done"]:
        run = skillopt.train(EXAMPLE, db=pieces, name="r", overrides=OVERRIDES, max_stages=9)
    assert event_rows(pieces) == event_rows(whole)


def test_open_lists_runs_and_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    db = tmp_path / "api.db"
    skillopt.train(EXAMPLE, db=db, name="one", overrides=OVERRIDES, max_stages=2)
    skillopt.train(EXAMPLE, db=db, name="two", overrides=OVERRIDES, max_stages=2)
    with skillopt.open(db) as ledger:
        assert [(r.name, r.kind) for r in ledger.runs()] == [("one", "train"), ("two", "train")]
        assert ledger.run().name == "two"
        assert ledger.run("one").status()["run"] == "one"
        with pytest.raises(skillopt.LedgerError, match="no run named 'three'"):
            ledger.run("three")
        with pytest.raises(skillopt.InputError, match="run one: "):
            ledger.run("one").skill("step:99")
    with pytest.raises(skillopt.InputError, match="train.num_epochs"):
        skillopt.train(EXAMPLE, db=db, name="one", overrides=[*OVERRIDES, "train.num_epochs=9"])
    with pytest.raises(skillopt.InputError, match="train.bogus"):
        skillopt.train(EXAMPLE, db=db, name="new", overrides={"train.bogus": 1})
    assert [r.name for r in skillopt.open(db).runs()] == ["one", "two"]  # nothing half-created


def test_import_skillopt_is_cheap_and_typed() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, skillopt\n"
        "print(sorted(m for m in ('sqlalchemy', 'pydantic', 'skillopt.commands.api') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().replace("'", '"')) == []
    assert (Path(skillopt.__file__).parent / "py.typed").is_file()
    with pytest.raises(AttributeError):
        skillopt.nothing_here  # noqa: B018
