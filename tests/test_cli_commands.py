"""The CLI's commands and JSON shapes, on real ledgers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import EXAMPLE, SMALL, Cli, event_rows

STATUS_KEYS = {
    "run",
    "phase",
    "epoch",
    "step",
    "total_steps",
    "done",
    "current_score",
    "best_score",
    "best_step",
    "current_skill_hash",
    "best_skill_hash",
    "events",
}
STEP_KEYS = {
    "step",
    "epoch",
    "action",
    "rollout_hard",
    "rollout_soft",
    "candidate_hash",
    "selection_hard",
    "selection_soft",
    "candidate_gate_score",
    "current_score",
    "best_score",
    "n_edits_merged",
    "n_edits_selected",
    "edit_budget",
    "edits_applied",
    "edits_skipped",
}


def _init(cli: Cli, tmp_path: Path, *extra: str) -> str:
    db = str(tmp_path / "runs.db")
    res = cli("init", str(EXAMPLE), "--db", db, "--name", "t", *SMALL, *extra)
    assert res.code == 0, res.err
    return db


def test_step_runs_exactly_one_stage(cli: Cli, tmp_path: Path) -> None:
    db = _init(cli, tmp_path)
    res = cli("step", "--db", db)
    assert res.code == 0
    assert res.out.startswith("stage dataset: appended 1 event(s)")
    assert cli("status", "--db", db, "--json").json()["phase"] == "baseline"
    events = cli("step", "--db", db, "--json").json()
    assert [e["type"] for e in events] == ["rollout.scored"] * 12 + ["baseline.evaluated"]
    assert [e["seq"] for e in events] == list(range(3, 16))
    assert set(events[0]) >= {"seq", "type", "recorded_at", "hash", "payload"}
    assert cli("status", "--db", db, "--json").json()["phase"] == "epoch_plan"


def test_run_max_stages_then_status_and_events(cli: Cli, tmp_path: Path) -> None:
    db = _init(cli, tmp_path)
    status = cli("run", "--db", db, "--max-stages", "4", "--json").json()
    assert set(status) >= STATUS_KEYS
    assert status["phase"] == "reflect_plan" and status["step"] == 1 and status["done"] is False
    assert status["total_steps"] == 4
    status = cli("run", "--db", db, "--json").json()
    assert status["done"] is True and status["phase"] == "done"
    assert status["events"] == len(event_rows(Path(db)))
    gates = cli("events", "--db", db, "--type", "gate.decided", "--json").json()
    assert gates and all(e["type"] == "gate.decided" for e in gates)
    assert {"action", "rule", "candidate_score", "current_score"} <= set(gates[0]["payload"])
    text = cli("events", "--db", db, "--type", "step.completed").out
    assert text.count("step.completed") == 4
    runs = cli("runs", "--db", db, "--json").json()
    assert runs[0]["run"] == "t" and runs[0]["phase"] == "done"


def test_report_json_shape(cli: Cli, small_run: Path) -> None:
    report = cli("report", "--db", str(small_run), "--json").json()
    assert {"run", "config", "baseline", "steps", "final", "totals"} <= set(report)
    assert report["steps"] and all(set(s) >= STEP_KEYS for s in report["steps"])
    assert set(report["totals"]) == {"steps", "accepts", "rejects", "skips"}
    totals = report["totals"]
    assert totals["accepts"] + totals["rejects"] + totals["skips"] == totals["steps"]
    assert report["config"]["env"]["name"] == "sim"


def test_unusable_optimizer_replies_become_explicit_events(cli: Cli, tmp_path: Path) -> None:
    unusable = ["--set", "models.optimizer.options.unusable_rate=1.0"]
    db = _init(cli, tmp_path, *unusable, "--set", "optimizer.max_unusable_steps=0")
    assert cli("run", "--db", db).code == 0  # 0: never stop (tests/test_unusable.py stops)
    proposals = cli("events", "--db", db, "--type", "reflection.proposed", "--json").json()
    assert proposals
    for p in proposals:
        assert p["payload"]["ok"] is False
        assert (
            p["payload"]["error"]
            == "no JSON object in reply; after a re-ask: no JSON object in reply"
        )
        assert p["payload"]["edits"] == [] and p["payload"]["reask"]["call_id"]
    actions = {s["action"] for s in cli("report", "--db", db, "--json").json()["steps"]}
    assert actions == {"skip_reflection_unusable"}  # not no_patches: nothing was proposed


def test_an_unusable_reply_is_re_asked_once_with_the_error(cli: Cli, tmp_path: Path) -> None:
    db = _init(cli, tmp_path, "--set", "models.optimizer.options.unusable_rate=0.5")
    assert cli("run", "--db", db).code == 0
    proposals = [
        e["payload"]
        for e in cli("events", "--db", db, "--type", "reflection.proposed", "--json").json()
    ]
    rescued = [p for p in proposals if p["reask"] and p["ok"]]
    assert rescued and any(p["reask"] is None for p in proposals)
    shown = cli("calls", "show", rescued[0]["reask"]["call_id"], "--db", db).out
    assert "--- assistant ---" in shown and "Your reply could not be used: no JSON object" in shown
    assert cli("replay", "--db", db, "--verify").code == 0


def test_a_failed_stage_is_recorded_and_retried(cli: Cli, tmp_path: Path) -> None:
    db = _init(cli, tmp_path)
    assert cli("run", "--db", db, "--max-stages", "1").code == 0
    with sqlite3.connect(db) as conn:  # lose the initial skill text: the baseline cannot run
        saved = conn.execute("SELECT hash, text FROM blobs").fetchall()
        conn.execute("DELETE FROM blobs")
    res = cli("run", "--db", db)
    assert res.code == 1
    assert "stage baseline failed" in res.err and "stage.failed" in res.err
    failed = cli("events", "--db", db, "--type", "stage.failed", "--json").json()
    assert failed[0]["payload"]["stage"] == "baseline"
    assert cli("status", "--db", db, "--json").json()["last_failure"]["stage"] == "baseline"
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO blobs (hash, text) VALUES (?, ?)", saved)
    assert cli("run", "--db", db).code == 0
    assert cli("status", "--db", db, "--json").json()["done"] is True
    assert cli("replay", "--db", db, "--verify").code == 0


def test_gate_off_force_accepts_every_candidate(cli: Cli, tmp_path: Path) -> None:
    db = _init(cli, tmp_path, "--set", "evaluation.use_gate=false")
    assert cli("run", "--db", db).code == 0
    steps = cli("report", "--db", db, "--json").json()["steps"]
    evaluated = [s for s in steps if s["candidate_gate_score"] is not None]
    assert evaluated and all(s["action"] == "force_accept" for s in evaluated)
    assert cli("replay", "--db", db, "--verify").code == 0


def test_accumulation_failure_only_and_mixed_metric(cli: Cli, tmp_path: Path) -> None:
    db = _init(
        cli,
        tmp_path,
        "--set",
        "train.batch_size=3",
        "--set",
        "train.accumulation=2",
        "--set",
        "gradient.failure_only=true",
        "--set",
        "evaluation.gate_metric=mixed",
        "--set",
        "evaluation.gate_mixed_weight=0.3",
    )
    assert cli("run", "--db", db).code == 0
    plans = cli("events", "--db", db, "--type", "epoch.planned", "--json").json()
    assert all(
        len(step) == 2 and all(len(b) == 3 for b in step)
        for p in plans
        for step in p["payload"]["steps"]
    )
    mbs = cli("events", "--db", db, "--type", "reflection.planned", "--json").json()
    assert all(m["source_type"] == "failure" for e in mbs for m in e["payload"]["minibatches"])
    evaluated = cli("events", "--db", db, "--type", "candidate.evaluated", "--json").json()
    for e in evaluated:
        p = e["payload"]
        assert p["metric"] == "mixed"
        assert abs(p["gate_score"] - (0.7 * p["hard"] + 0.3 * p["soft"])) < 1e-12
    assert cli("replay", "--db", db, "--verify").code == 0


def test_a_zero_budget_step_is_skipped_before_spending_anything(cli: Cli, tmp_path: Path) -> None:
    db = _init(
        cli,
        tmp_path,
        "--set",
        "optimizer.min_learning_rate=0",
        "--set",
        "optimizer.lr_scheduler=linear",
    )
    assert cli("run", "--db", db).code == 0
    steps = cli("report", "--db", db, "--json").json()["steps"]
    assert steps[-1]["action"] == "skip_zero_budget"
    assert steps[-1]["rollout_n"] == 0  # no rollout, reflection or merge was paid for
    last = steps[-1]["step"]
    events = cli("events", "--db", db, "--json").json()
    assert not [
        e
        for e in events
        if e["type"] == "rollout.scored"
        and e["payload"]["phase"] == "train"
        and e["payload"]["step"] == last
    ]
    assert cli("replay", "--db", db, "--verify").code == 0


def test_refilled_batches_never_repeat_an_item_within_a_step(cli: Cli, tmp_path: Path) -> None:
    db = _init(
        cli,
        tmp_path,
        "--set",
        "env.options.train=4",
        "--set",
        "train.batch_size=3",
        "--set",
        "train.accumulation=3",
    )
    assert cli("run", "--db", db).code == 0
    for plan in cli("events", "--db", db, "--type", "epoch.planned", "--json").json():
        for step in plan["payload"]["steps"]:
            items = [i for batch in step for i in batch]
            assert len(items) == len(set(items)) == 4
    planned = cli("events", "--db", db, "--type", "reflection.planned", "--json").json()
    report = cli("report", "--db", db, "--json").json()["steps"]
    for plan, step in zip(planned, report, strict=False):
        assert (plan["payload"]["rollout_n"], plan["payload"]["rollout_hard"]) == (
            step["rollout_n"],
            step["rollout_hard"],
        )
