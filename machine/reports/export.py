"""Export a run to the reference trainer's output layout (semantics notes, section 5.1), so tools
written for the reference read our runs. A pure function: {relative path: file text}.

Where the ledger knows more or differently, the export says so rather than inventing:
wall-clock timings are null (payloads hold none), skill hashes are the reference's 16-hex
prefix, and our extra action `skip_nothing_applied` is kept as is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from skillopt.machine.core.state import StepProgress, TrainerState, eval_key, train_key

VERSION = "skillopt-ledger-export-1"


def _h(skill: str | None) -> str | None:
    return skill[:16] if skill else None


def _origin(origin: str) -> str:
    if origin.startswith("slow update (epoch "):
        return f"slow_update_epoch_{int(origin.split()[-1].rstrip(')')):02d}"
    return "initial_skill" if origin == "initial" else f"step_{int(origin.split()[1]):04d}"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def flat_config(state: TrainerState) -> dict[str, Any]:
    c, d = state.cfg, state.dataset
    spe = d.steps_per_epoch if d else None
    return {
        "num_epochs": c.train.num_epochs,
        "batch_size": c.train.batch_size,
        "accumulation": c.train.accumulation,
        "seed": c.train.seed,
        "train_size": len(d.train) if d else c.train.train_size,
        "steps_per_epoch": spe,
        "batches_per_epoch": spe * c.train.accumulation if spe else None,
        "minibatch_size": c.gradient.minibatch_size,
        "merge_batch_size": c.gradient.merge_batch_size,
        "analyst_workers": c.gradient.workers,
        "failure_only": c.gradient.failure_only,
        "edit_budget": c.optimizer.learning_rate,
        "min_edit_budget": c.optimizer.min_learning_rate,
        "lr_scheduler": c.optimizer.lr_scheduler,
        "lr_control_mode": "fixed",
        "skill_update_mode": "patch",
        "use_gate": c.evaluation.use_gate,
        "gate_metric": c.evaluation.gate_metric,
        "gate_mixed_weight": c.evaluation.gate_mixed_weight,
        "sel_env_num": c.evaluation.sel_env_num,
        "test_env_num": c.evaluation.test_env_num,
        "eval_test": c.evaluation.eval_test,
        "env": c.env.name,
        "skill_init": c.env.skill_init,
        "optimizer_backend": c.models.optimizer.backend,
        "optimizer_model": c.models.optimizer.model,
        "target_backend": c.models.target.backend,
        "target_model": c.models.target.model,
        "skillopt_config": dict(state.config_data),
    }


def _step_tokens(state: TrainerState, p: StepProgress) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}

    def add(stage: str, tin: int, tout: int) -> None:
        row = out.setdefault(stage, {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0})
        row["calls"] += 1
        row["prompt_tokens"] += tin
        row["completion_tokens"] += tout

    for item in state.scored(train_key(p.step)).values():
        add("rollout", *item.tokens)
    if p.evaluated is not None and not p.evaluated.cache_hit:
        for item in state.scored(eval_key("selection", p.evaluated.skill_hash)).values():
            add("rollout", *item.tokens)
    for prop in p.proposals.values():
        for call in filter(None, (prop.call, prop.reask)):
            add("analyst", call.tokens.input, call.tokens.output)
    for node in p.merged.nodes if p.merged else []:
        for call in filter(None, (node.call, node.reask)):
            add("merge", call.tokens.input, call.tokens.output)
    if p.selected is not None and p.selected.ranking is not None:
        rk = p.selected.ranking
        for call in filter(None, (rk.call, rk.reask)):
            add("ranking", call.tokens.input, call.tokens.output)
    return out


def step_record(state: TrainerState, step: int, lengths: Mapping[str, int]) -> dict[str, Any]:
    p = state.details[step]
    rec = next(r for r in state.records if r.step == step)
    items = state.scored(train_key(step))
    props = list(p.proposals.values())
    batches = []
    for b, batch in enumerate(p.batches):
        rows = [items[f"{b}/{i}"] for i in batch if f"{b}/{i}" in items]
        n = len(rows)
        batches.append(
            {
                "batch_idx": b,
                "batch_seed": state.plans[p.epoch].seed,
                "n_envs": n,
                "hard": sum(r.hard for r in rows) / n if n else 0.0,
                "soft": sum(r.soft for r in rows) / n if n else 0.0,
                # reflection runs once per step over all batches: per-batch patch counts do not exist
                "n_failure_patches": None,
                "n_success_patches": None,
            }
        )
    n_fail = sum(1 for x in props if x.edits and x.source_type == "failure")
    n_succ = sum(1 for x in props if x.edits and x.source_type == "success")
    cand = p.candidate
    out: dict[str, Any] = {
        "step": step,
        "epoch": p.epoch,
        "step_in_epoch": step - state.plans[p.epoch].first_step,
        "rollout_hard": rec.rollout_hard,
        "rollout_soft": rec.rollout_soft,
        "rollout_n": rec.rollout_n,
        "accumulation_batches": batches,
        "n_patches": n_fail + n_succ,
        "n_failure_patches": n_fail,
        "n_success_patches": n_succ,
        "n_edits_merged": rec.n_edits_merged,
        "n_edits_ranked": rec.n_edits_selected,
        "edit_budget": rec.edit_budget,
        "lr_control_mode": "fixed",
        "support_counts": [e.support_count for e in p.selected.edits] if p.selected else [],
        "action": rec.action,
        "current_score": rec.current_score,
        "best_score": rec.best_score,
        "skill_len": lengths.get(rec.current_hash),
        "tokens": _step_tokens(state, p),
        "timing": {},
        "wall_time_s": None,
    }
    if cand is not None:
        out |= {
            "candidate_hash": _h(cand.candidate_hash),
            "candidate_skill_len": cand.length,
            "edit_apply_summary": {
                "total": len(cand.report),
                "applied": cand.n_applied,
                "skipped": cand.n_skipped,
                "errors": 0,
            },
        }
    if p.evaluated is not None:
        out |= {
            "selection_hard": p.evaluated.hard,
            "selection_soft": p.evaluated.soft,
            "gate_metric": p.evaluated.metric,
            "candidate_gate_score": p.evaluated.gate_score,
        }
    return out


def _buckets(state: TrainerState, role: str) -> dict[str, Any] | None:
    e = state.final_tests.get(role)
    if e is None:
        return None
    return {k: {"total": b.total, "hard_acc": b.hard} for k, b in e.buckets.items()}


def export_reference(state: TrainerState, texts: Mapping[str, str], root: str) -> dict[str, str]:
    """The reference layout; `root` is the absolute export folder (runtime_state.json holds
    absolute paths, as the reference's does)."""
    lengths = {h: len(t) for h, t in texts.items()}
    files: dict[str, str] = {"config.json": _json(flat_config(state))}
    history = []
    files["skills/skill_v0000.md"] = texts[state.initial_hash]
    current, best = (state.initial_hash, "initial_skill"), (state.initial_hash, "initial_skill", 0)
    for rec in state.records:
        if rec.current_hash != current[0]:
            current = (rec.current_hash, f"step_{rec.step:04d}")
        if rec.best_hash != best[0]:
            best = (rec.best_hash, f"step_{rec.step:04d}", rec.step)
        record = step_record(state, rec.step, lengths) | {
            "current_origin": current[1],
            "best_origin": best[1],
            "best_step": best[2],
        }
        history.append(record)
        files[f"skills/skill_v{rec.step:04d}.md"] = texts[rec.current_hash]
        base = f"steps/step_{rec.step:04d}"
        files[f"{base}/step_record.json"] = _json(record)
        p = state.details[rec.step]
        if p.merged is not None:
            edits = [e.model_dump(mode="json") for e in p.merged.edits]
            files[f"{base}/merged_patch.json"] = _json(
                {"reasoning": f"merge root {p.merged.root}", "edits": edits}
            )
        if p.selected is not None:
            ranked: dict[str, Any] = {
                "reasoning": f"budget {p.selected.budget}",
                "edits": [e.model_dump(mode="json") for e in p.selected.edits],
            }
            if p.selected.ranking is not None:
                ranked["reasoning"] += (
                    f" [optimizer-ranked: selected {len(p.selected.edits)}/{p.selected.n_merged} edits]"
                )
                ranked["ranking_details"] = {
                    "reasoning": p.selected.ranking.reasoning,
                    "selected_indices": p.selected.kept_indices,
                }
            files[f"{base}/ranked_edits.json"] = _json(ranked)
        if p.candidate is not None:
            files[f"{base}/candidate_skill.md"] = texts[p.candidate.candidate_hash]
            files[f"{base}/edit_apply_report.json"] = _json(
                [r.model_dump(mode="json") for r in p.candidate.report]
            )
    files["history.json"] = _json(history)
    files["best_skill.md"] = texts[state.best_hash]
    last = state.steps_completed
    files["runtime_state.json"] = _json(
        {
            "last_completed_step": last,
            "current_skill_path": f"{root}/skills/skill_v{last:04d}.md",
            "current_score": state.current_score,
            "current_origin": _origin(state.current_origin),
            "best_skill_path": f"{root}/best_skill.md",
            "best_score": state.best_score,
            "best_step": state.best_step,
            "best_origin": _origin(state.best_origin.split(" (")[0]),
        }
    )
    tests = {role: state.final_tests.get(role) for role in ("initial", "best", "final")}
    for role, folder in (
        ("initial", "test_eval_baseline"),
        ("best", "test_eval"),
        ("final", "test_eval_final"),
    ):
        if (b := _buckets(state, role)) is not None:
            files[f"{folder}/summary.json"] = _json(b)
    fs = state.final_selection
    epoch_stats = []
    for epoch in sorted(state.plans):
        recs = [r for r in state.records if r.epoch == epoch]
        if recs:
            epoch_stats.append(
                {
                    "epoch": epoch,
                    "steps": [r.step for r in recs],
                    "accepts": sum(1 for r in recs if "accept" in r.action),
                    "rejects": sum(1 for r in recs if r.action == "reject"),
                    "skips": sum(1 for r in recs if r.action.startswith("skip")),
                    "best_score_at_epoch_end": recs[-1].best_score,
                    "current_score_at_epoch_end": recs[-1].current_score,
                }
            )
    totals = state.totals()
    t = {k: (v.hard if v else None, v.soft if v else None) for k, v in tests.items()}
    files["summary.json"] = _json(
        {
            "version": VERSION,
            "config": flat_config(state),
            "baseline_selection_hard": state.baseline.hard if state.baseline else None,
            "best_selection_hard": state.best_score,
            "final_selection_hard": fs.hard if fs else None,
            "final_selection_soft": fs.soft if fs else None,
            "best_step": state.best_step,
            "current_origin": _origin(state.current_origin),
            "best_origin": _origin(state.best_origin.split(" (")[0]),
            "total_steps": totals["steps"],
            "total_accepts": totals["accepts"],
            "total_rejects": totals["rejects"],
            "total_skips": totals["skips"],
            "epoch_stats": epoch_stats,
            "baseline_test_hard": t["initial"][0],
            "baseline_test_soft": t["initial"][1],
            "test_hard": t["best"][0],
            "test_soft": t["best"][1],
            "final_test_hard": t["final"][0],
            "final_test_soft": t["final"][1],
            "test_delta_hard": None
            if t["best"][0] is None or t["initial"][0] is None
            else t["best"][0] - t["initial"][0],
            "final_test_delta_hard": None
            if t["final"][0] is None or t["initial"][0] is None
            else t["final"][0] - t["initial"][0],
            "total_wall_time_s": None,
            "token_summary": {
                k: {"calls": c, "prompt_tokens": i, "completion_tokens": o}
                for k, (c, i, o, _) in sorted(state.tokens.items())
            },
        }
    )
    return dict(sorted(files.items()))
