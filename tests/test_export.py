"""Export to the reference layout: the files and keys tools written for the reference read."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli

STEP_KEYS = {
    "step",
    "epoch",
    "step_in_epoch",
    "rollout_hard",
    "rollout_soft",
    "rollout_n",
    "accumulation_batches",
    "n_patches",
    "n_failure_patches",
    "n_success_patches",
    "n_edits_merged",
    "n_edits_ranked",
    "edit_budget",
    "lr_control_mode",
    "support_counts",
    "action",
    "current_score",
    "best_score",
    "best_step",
    "current_origin",
    "best_origin",
    "skill_len",
    "tokens",
    "timing",
    "wall_time_s",
}
EVALUATED_KEYS = {
    "candidate_hash",
    "candidate_skill_len",
    "edit_apply_summary",
    "selection_hard",
    "selection_soft",
    "gate_metric",
    "candidate_gate_score",
}
SUMMARY_KEYS = {
    "version",
    "config",
    "baseline_selection_hard",
    "best_selection_hard",
    "final_selection_hard",
    "final_selection_soft",
    "best_step",
    "current_origin",
    "best_origin",
    "total_steps",
    "total_accepts",
    "total_rejects",
    "total_skips",
    "epoch_stats",
    "baseline_test_hard",
    "baseline_test_soft",
    "test_hard",
    "test_soft",
    "final_test_hard",
    "final_test_soft",
    "test_delta_hard",
    "final_test_delta_hard",
    "total_wall_time_s",
    "token_summary",
}


def test_export_writes_the_reference_layout(cli: Cli, small_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    assert cli("export", str(out), "--db", str(small_run)).code == 0
    report = cli("report", "--db", str(small_run), "--json").json()
    history = json.loads((out / "history.json").read_text())
    assert [r["step"] for r in history] == [s["step"] for s in report["steps"]]
    for record, step in zip(history, report["steps"], strict=True):
        assert set(record) >= STEP_KEYS
        if step["candidate_gate_score"] is not None:
            assert set(record) >= EVALUATED_KEYS
            assert record["candidate_hash"] == step["candidate_hash"][:16]
        n = record["step"]
        folder = out / "steps" / f"step_{n:04d}"
        assert json.loads((folder / "step_record.json").read_text()) == record
        assert (out / "skills" / f"skill_v{n:04d}.md").read_text() == cli(
            "skill", "show", f"step:{n}", "--db", str(small_run)
        ).out
        if step["n_edits_selected"]:
            ranked = json.loads((folder / "ranked_edits.json").read_text())
            assert len(ranked["edits"]) == step["n_edits_selected"]
            report_rows = json.loads((folder / "edit_apply_report.json").read_text())
            assert [r["status"] for r in report_rows] == [e["status"] for e in step["edits"]]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= SUMMARY_KEYS
    totals = report["totals"]
    assert (
        summary["total_steps"],
        summary["total_accepts"],
        summary["total_rejects"],
        summary["total_skips"],
    ) == (totals["steps"], totals["accepts"], totals["rejects"], totals["skips"])
    assert summary["test_hard"] == report["final"]["test"]["best"]["hard"]
    state = json.loads((out / "runtime_state.json").read_text())
    assert (
        Path(state["current_skill_path"]).is_absolute()
        and Path(state["current_skill_path"]).exists()
    )
    assert (
        Path(state["best_skill_path"]).read_text()
        == cli("skill", "show", "best", "--db", str(small_run)).out
    )
    config = json.loads((out / "config.json").read_text())
    assert config["edit_budget"] == 3 and config["batch_size"] == 6
    assert (
        json.loads((out / "test_eval_baseline" / "summary.json").read_text())["overall"]["total"]
        == 12
    )


def test_export_is_pure_and_refuses_a_used_folder(
    cli: Cli, small_run: Path, tmp_path: Path
) -> None:
    files = []
    for name in ("a", "b"):
        assert cli("export", str(tmp_path / name), "--db", str(small_run)).code == 0
        files.append(
            {
                p.relative_to(tmp_path / name): p.read_bytes()
                for p in sorted((tmp_path / name).rglob("*"))
                if p.is_file()
            }
        )
    runtime = Path("runtime_state.json")
    assert files[0].keys() == files[1].keys()
    assert {k: v for k, v in files[0].items() if k != runtime} == {
        k: v for k, v in files[1].items() if k != runtime
    }
    res = cli("export", str(tmp_path / "a"), "--db", str(small_run))
    assert res.code == 2 and "not empty" in res.err
