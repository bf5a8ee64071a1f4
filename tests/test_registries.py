"""The registries cannot be forgotten: every command has a stage and a handler, every event
type a reducer rule and a verify rule (derived by its stage, or explicitly observed); verify
refuses an event it has no rule for; the fold refuses a gap; old payloads are upcast in one
place; and a stage decision is computed once, for the run and for `replay --verify` alike."""

from __future__ import annotations

import inspect
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

import pytest

from skillopt.commands.runner import HANDLERS, fold
from skillopt.ledger.errors import CorruptEvent
from skillopt.ledger.ledger import Ledger
from skillopt.machine.core import events as ev
from skillopt.machine.loop import reducer
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages import registry
from skillopt.machine.stages import update as update_stage
from tests.conftest import EXAMPLE, PLAIN, SMALL, Cli
from tests.test_forgery import _forge

COMMANDS = [c for _, c in inspect.getmembers(tr, inspect.isclass) if issubclass(c, tr.Command)]
COMMANDS.remove(tr.Command)
TRAINER_EVENTS = [cls for cls in ev.REGISTRY.values() if cls not in registry.BENCH]


def test_every_command_has_a_stage_and_a_handler() -> None:
    assert set(tr.STAGES) == set(COMMANDS)
    assert set(HANDLERS) == set(COMMANDS)
    names = [stage.name for stage in tr.STAGES.values()]
    assert len(names) == len(set(names)), "two commands share a stage name"


def test_every_event_a_stage_emits_is_registered_and_every_trainer_event_is_emitted() -> None:
    emitted = {t for stage in tr.STAGES.values() for t in stage.emits}
    assert emitted <= set(ev.REGISTRY.values())
    # what no stage emits comes from elsewhere: the run's creation, a fork, the budget commands
    # and the runner's failure and budget records, all observed
    assert set(TRAINER_EVENTS) - emitted <= registry.OBSERVED


def test_every_trainer_event_has_a_reducer_rule() -> None:
    missing = [cls.TYPE for cls in TRAINER_EVENTS if cls not in reducer._HANDLERS]
    assert missing == []


def test_every_trainer_event_is_derived_or_explicitly_observed() -> None:
    derived, observed = set(registry.DERIVED), set(registry.OBSERVED)
    assert derived.isdisjoint(observed)
    unruled = [cls.TYPE for cls in TRAINER_EVENTS if cls not in derived | observed]
    assert unruled == []
    from skillopt.machine.verify import CATEGORY
    from skillopt.machine.verify.observed import OBSERVED_CHECKS

    assert set(CATEGORY) == derived
    assert set(OBSERVED_CHECKS) == observed


def test_verify_refuses_an_event_it_has_no_rule_for(
    cli: Cli, small_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(registry.DERIVED, ev.GateDecided)
    res = cli("replay", "--db", str(small_run), "--verify", "--json")
    assert res.code == 1
    assert "verify has no rule for gate.decided" in res.json()["problem"]["message"]


def test_the_fold_refuses_a_gap(small_run: Path) -> None:
    ledger = Ledger.open(str(small_run))
    stored = ledger.read(ledger.find_run(None).id)
    ledger.close()
    assert fold(stored).seq == len(stored)
    with pytest.raises(CorruptEvent, match=r"seq 5: follows seq 3: events have a gap"):
        fold(stored[:3] + stored[4:])


class _Renamed(ev.Event):
    TYPE: ClassVar[str] = "test.renamed"
    VERSION: ClassVar[int] = 3
    label: str
    count: int


def test_old_payloads_are_upcast_through_every_version() -> None:
    ev.register(_Renamed)
    try:
        ev.upcast("test.renamed", 1)(lambda p: {"label": p.pop("name"), **p})
        ev.upcast("test.renamed", 2)(lambda p: {**p, "count": int(p["count"])})
        assert ev.parse_event("test.renamed", 1, {"name": "x", "count": "2"}) == _Renamed(
            label="x", count=2
        )
        assert ev.parse_event("test.renamed", 3, {"label": "y", "count": 1}).label == "y"
        with pytest.raises(ValueError, match="registered twice"):
            ev.upcast("test.renamed", 1)(lambda p: p)
        with pytest.raises(ev.UnknownEventType, match="test.renamed v0"):
            ev.parse_event("test.renamed", 0, {})
    finally:
        del ev.REGISTRY[("test.renamed", 3)]
        ev.UPCASTS.pop(("test.renamed", 1), None)
        ev.UPCASTS.pop(("test.renamed", 2), None)


def _budgets(db: Path) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM events WHERE type = 'edits.selected' ORDER BY seq")
        return [json.loads(p)["budget"] for (p,) in rows]


def _seqs(db: Path, type_: str) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq FROM events WHERE type = ? ORDER BY seq", (type_,))
        return [seq for (seq,) in rows]


def _verify(cli: Cli, db: Path) -> dict[str, Any]:
    return cli("replay", "--db", str(db), "--verify", "--json").json()


def test_a_stage_decision_is_computed_once_for_the_run_and_for_verify(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break the edit-budget rule in its one place: a run and `replay --verify` change together
    (so no second copy of the rule exists), and a forged edits.selected is still caught."""
    args = [*SMALL, *PLAIN, "--set", "optimizer.learning_rate=2", "--set", "train.num_epochs=1"]
    honest, broken = tmp_path / "honest.db", tmp_path / "broken.db"
    for db in (honest, broken):
        assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *args).code == 0
    assert cli("run", "--db", str(honest)).code == 0
    assert _verify(cli, honest)["verified"] is True

    rule = update_stage.edit_budget
    monkeypatch.setattr(update_stage, "edit_budget", lambda *a: rule(*a) + 1)
    assert cli("run", "--db", str(broken)).code == 0
    assert _budgets(broken) == [b + 1 for b in _budgets(honest)]
    assert _verify(cli, broken)["verified"] is True  # the broken rule verifies its own run
    first_selection = _seqs(honest, "edits.selected")[0]
    problem = _verify(cli, honest)["problem"]  # ... and refuses the honest one, at its first
    assert (problem["seq"], problem["message"].split(":")[0]) == (first_selection, "edits.selected")

    monkeypatch.undo()
    problem = _verify(cli, broken)["problem"]
    assert (problem["seq"], problem["message"].split(":")[0]) == (first_selection, "edits.selected")
    forged = tmp_path / "forged.db"
    shutil.copy(honest, forged)
    seq = _forge(forged, "edits.selected", lambda p: {**p, "kept_indices": [0]})
    problem = _verify(cli, forged)["problem"]
    assert problem["seq"] == seq and "kept indices" in problem["message"]
