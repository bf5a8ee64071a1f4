"""Issue 3 end to end: each mechanism on the `sim` environment with the offline model, through
the real CLI, shows its events in the ledger and its effect in `report --md/--json`, and
`replay --verify` re-derives it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skillopt.machine.decisions.skilldoc import APPENDIX_START, SLOW_UPDATE_START
from tests.conftest import ALL_GATED, ALL_MECHANISMS, EXAMPLE, PLAIN, SMALL, Cli, sets

RUNS = {
    "all": [*ALL_MECHANISMS, *sets("train.num_epochs=3")],
    "gated": ALL_GATED,
    "full_rewrite": [*PLAIN, *sets("optimizer.skill_update_mode=full_rewrite")],
    # config_version 2: `none` kept every merged edit there, and a run recorded so keeps that
    # meaning (from version 3 `none` applies the schedule in patch mode, as the reference)
    "no_budget": [
        *PLAIN,
        *sets("optimizer.lr_control_mode=off", "optimizer.learning_rate=1", "config_version=2"),
    ],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    from typer.testing import CliRunner

    from skillopt.commands.cli import app

    db = str(tmp_path_factory.mktemp("mechanisms") / "runs.db")
    runner = CliRunner()
    for name, extra in RUNS.items():
        args = ["init", str(EXAMPLE), "--db", db, "--name", name, *SMALL, *extra]
        assert runner.invoke(app, args).exit_code == 0
        assert runner.invoke(app, ["run", "--db", db, "--run", name]).exit_code == 0
    return {"db": db}


def _events(cli: Cli, runs: dict[str, str], run: str, type_: str) -> list[dict[str, Any]]:
    rows = cli("events", "--db", runs["db"], "--run", run, "--type", type_, "--json").json()
    return [r["payload"] for r in rows]


def _report(cli: Cli, runs: dict[str, str], run: str) -> tuple[dict[str, Any], str]:
    data = cli("report", "--db", runs["db"], "--run", run, "--json").json()
    return data, cli("report", "--db", runs["db"], "--run", run, "--md").out


@pytest.mark.parametrize("run", sorted(RUNS))
def test_every_mechanism_run_verifies(cli: Cli, runs: dict[str, str], run: str) -> None:
    res = cli("replay", "--db", runs["db"], "--run", run, "--verify", "--json")
    assert res.code == 0, res.out


def test_rewrite_from_suggestions(cli: Cli, runs: dict[str, str]) -> None:
    proposed = _events(cli, runs, "gated", "reflection.proposed")
    assert any(p["suggestions"] for p in proposed)
    assert all(p["edits"] == [] for p in proposed)  # suggestions replace edits in this mode
    selected = _events(cli, runs, "gated", "edits.selected")
    assert selected and all(s["edits"] == [] and s["suggestions"] for s in selected)
    built = _events(cli, runs, "gated", "candidate.built")
    assert built and all(b["mode"] == "rewrite_from_suggestions" for b in built)
    assert all(b["rewrite"]["ok"] and b["rewrite"]["call"] for b in built)
    data, md = _report(cli, runs, "gated")
    assert any(s["rewrite"] and s["suggestions"] for s in data["steps"])
    assert "- Rewrite: " in md and "suggestion `add_rule`" in md


def test_full_rewrite_has_no_budget_and_no_ranking(cli: Cli, runs: dict[str, str]) -> None:
    proposed = _events(cli, runs, "full_rewrite", "reflection.proposed")
    candidates = [c for p in proposed for c in p["skill_candidates"]]
    assert candidates and all(len(p["skill_candidates"]) <= 1 for p in proposed)
    for c in candidates:  # whole skills are blobs, named by hash
        assert cli("blob", c["skill_hash"], "--db", runs["db"]).out.startswith("# ")
    assert _events(cli, runs, "full_rewrite", "edits.selected") == []
    built = _events(cli, runs, "full_rewrite", "candidate.built")
    assert built and all(b["mode"] == "full_rewrite_minibatch" for b in built)
    data, _ = _report(cli, runs, "full_rewrite")
    assert {s["update_mode"] for s in data["steps"] if s["update_mode"]} == {
        "full_rewrite_minibatch"
    }
    assert data["final"]["best_score"] > data["baseline"]["gate_score"]


def test_autonomous_budget_is_decided_and_recorded(cli: Cli, runs: dict[str, str]) -> None:
    selected = _events(cli, runs, "all", "edits.selected")
    assert selected and all(s["control"] == "autonomous" for s in selected)
    for s in selected:
        d = s["decision"]
        assert d["ok"] and d["reasoning"] and d["confidence"] in ("medium", "high")
        assert s["budget"] == min(d["requested"], s["n_merged"])  # clamped to what is there
        assert s["schedule_t"] == 0  # the schedule's counter never moves in this mode
    _, md = _report(cli, runs, "all")
    assert "Edit budget chosen by the optimizer" in md


def test_no_budget_keeps_every_merged_edit(cli: Cli, runs: dict[str, str]) -> None:
    selected = _events(cli, runs, "no_budget", "edits.selected")
    assert selected and all(s["control"] == "none" and s["decision"] is None for s in selected)
    assert all(s["budget"] == s["n_merged"] and not s["dropped_indices"] for s in selected)
    assert any(s["n_merged"] > 1 for s in selected)  # learning_rate=1 would have cut these


def test_the_step_buffer_reaches_later_prompts(cli: Cli, runs: dict[str, str]) -> None:
    db = runs["db"]
    proposed = _events(cli, runs, "all", "reflection.proposed")
    prompts = {p["step"]: cli("blob", p["call"]["prompt_hash"], "--db", db).out for p in proposed}
    per_epoch = cli("report", "--db", db, "--run", "all", "--json").json()["dataset"][
        "steps_per_epoch"
    ]
    first_steps = {1 + k * per_epoch for k in range(3)}
    for step, prompt in prompts.items():
        # Earlier steps of the same epoch only: reset at every epoch boundary.
        assert ("## Previous Steps in This Epoch" in prompt) == (step not in first_steps), step
    plain = _events(cli, runs, "no_budget", "reflection.proposed")
    assert all(
        "Previous Steps" not in cli("blob", p["call"]["prompt_hash"], "--db", db).out for p in plain
    )


def test_slow_update_force_accepts_into_current_only(cli: Cli, runs: dict[str, str]) -> None:
    done = _events(cli, runs, "all", "slow_update.done")
    assert [d["action"] for d in done][:2] == ["placeholder", "force_accept"]
    assert done[1]["pairs"] is not None and done[1]["content_hash"]
    reviews = _events(cli, runs, "all", "review.planned")
    assert [r["epoch"] for r in reviews] == [2, 3] and reviews[0]["policy"] == "changed"
    current = cli("skill", "show", "current", "--db", runs["db"], "--run", "all").out
    assert SLOW_UPDATE_START in current
    guidance = cli("blob", done[-1]["content_hash"], "--db", runs["db"]).out.strip()
    assert guidance and guidance in current
    data, md = _report(cli, runs, "all")
    assert [e["slow_update"]["action"] for e in data["epochs"]][:2] == [
        "placeholder",
        "force_accept",
    ]
    assert "## Epoch boundaries" in md


def test_slow_update_gated_like_a_step(cli: Cli, runs: dict[str, str]) -> None:
    done = _events(cli, runs, "gated", "slow_update.done")
    assert done[-1]["action"] == "gate"
    gates = [g for g in _events(cli, runs, "gated", "update.gated") if g["kind"] == "slow_update"]
    assert gates and gates[0]["action"] in ("accept", "accept_new_best", "reject")
    data, _ = _report(cli, runs, "gated")
    assert data["epochs"][-1]["slow_update"]["gate"]["action"] == gates[0]["action"]


def test_meta_skill_is_written_and_read_later(cli: Cli, runs: dict[str, str]) -> None:
    metas = _events(cli, runs, "all", "meta_skill.done")
    assert [m["epoch"] for m in metas] == [2, 3] and metas[0]["action"] == "write"
    memory = cli("blob", metas[0]["content_hash"], "--db", runs["db"]).out.strip()
    per_epoch = cli("report", "--db", runs["db"], "--run", "all", "--json").json()["dataset"][
        "steps_per_epoch"
    ]
    for p in _events(cli, runs, "all", "reflection.proposed"):
        prompt = json.loads(cli("blob", p["call"]["prompt_hash"], "--db", runs["db"]).out)["user"]
        in_epoch_3 = p["step"] > 2 * per_epoch
        assert ("## Optimizer Meta Skill" in prompt) == in_epoch_3
        if in_epoch_3:
            assert memory in prompt


def test_appendix_notes_flush_on_every_path(cli: Cli, runs: dict[str, str]) -> None:
    flushed = _events(cli, runs, "all", "appendix.flushed")
    assert flushed and any(f["consolidation"] for f in flushed)
    steps = {
        s["step"]: s
        for s in cli("report", "--db", runs["db"], "--run", "all", "--json").json()["steps"]
    }
    assert {steps[f["step"]]["action"] for f in flushed} - {"accept", "accept_new_best"}
    for f in flushed:
        assert f["notes"] and len(f["added"]) + f["duplicates"] == len(f["notes"])
    assert APPENDIX_START in cli("skill", "show", "current", "--db", runs["db"], "--run", "all").out
    _, md = _report(cli, runs, "all")
    assert "- Appendix: +" in md


def test_appendix_gated_goes_through_the_gate(cli: Cli, runs: dict[str, str]) -> None:
    flushed = _events(cli, runs, "gated", "appendix.flushed")
    assert flushed and all(f["gated"] for f in flushed)
    gates = [g for g in _events(cli, runs, "gated", "update.gated") if g["kind"] == "appendix"]
    changed = [f for f in flushed if f["skill_hash"] != f["parent_hash"]]
    assert len(gates) == len(changed) >= 1
    _, md = _report(cli, runs, "gated")
    assert "; gate: " in md
