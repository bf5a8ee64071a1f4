"""What commands print: status, the report (JSON) and its markdown. Pure functions of state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from machine.budget import by_role, limits, spent, stage_cost
from machine.canonical import short
from machine.history import unified_diff
from machine.state import TrainerState
from machine.transitions import FINAL_TEST_ROLES, next_command


def phase_of(state: TrainerState) -> str:
    if state.config is None:
        return "empty"
    command = next_command(state)
    return "done" if command is None else command.stage


def status_view(state: TrainerState) -> dict[str, Any]:
    p = state.progress
    failure = state.last_failure
    return {
        "run": state.run_name,
        "phase": phase_of(state),
        "epoch": state.epoch,
        "step": p.step if p is not None else state.steps_completed,
        "total_steps": state.total_steps,
        "done": state.completed is not None,
        "current_score": state.current_score if state.baseline else None,
        "best_score": state.best_score if state.baseline else None,
        "best_step": state.best_step,
        "current_skill_hash": state.current_hash,
        "best_skill_hash": state.best_hash,
        "events": state.seq,
        "last_failure": failure.model_dump(mode="json") if failure else None,
        **_spending(state),
    }


def _spending(state: TrainerState) -> dict[str, Any]:
    if state.config is None:
        return {}
    cost, tokens = spent(state)
    usd, tok = limits(state)
    return {
        "tokens": tokens,
        "cost": cost,
        "by_role": by_role(state),
        "budget": {"max_usd": usd, "max_tokens": tok},
    }


def _score(e: Any) -> dict[str, Any] | None:
    if e is None:
        return None
    return {
        "skill_hash": e.skill_hash,
        "n": e.n,
        "hard": e.hard,
        "soft": e.soft,
        "gate_score": e.gate_score,
    }


def report_data(state: TrainerState) -> dict[str, Any]:
    data = state.dataset
    final_sel = state.final_selection
    tests = {
        role: {
            **(_score(e) or {}),
            "reused": e.reused,
            "buckets": {k: v.model_dump(mode="json") for k, v in e.buckets.items()},
        }
        for role, e in sorted(
            state.final_tests.items(), key=lambda kv: FINAL_TEST_ROLES.index(kv[0])
        )
    }
    return {
        "run": state.run_name,
        "config": dict(state.config_data),
        "dataset": None
        if data is None
        else {
            "env": data.env,
            "sizes": {
                "train": len(data.train),
                "selection": len(data.selection),
                "test": len(data.test),
            },
            "task_types": data.task_types,
            "steps_per_epoch": data.steps_per_epoch,
            "total_steps": data.total_steps,
        },
        "baseline": _score(state.baseline),
        "steps": [asdict(r) for r in state.records],
        "final": {
            "done": state.completed is not None,
            "initial_skill_hash": state.initial_hash,
            "best_skill_hash": state.best_hash,
            "best_score": state.best_score,
            "best_step": state.best_step,
            "best_origin": state.best_origin,
            "final_skill_hash": state.current_hash,
            "final_score": state.current_score,
            "final_selection": None
            if final_sel is None
            else {
                **(_score(final_sel) or {}),
                "reused": final_sel.reused,
                "promoted": final_sel.promoted,
            },
            "test": tests,
        },
        "totals": state.totals(),
        "tokens": {
            stage: {
                "calls": c,
                "input": i,
                "output": o,
                "cached": k,
                "cost": stage_cost(state, stage, i, o, k),
            }
            for stage, (c, i, o, k) in sorted(state.tokens.items())
        },
    }


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _cell(text: str, width: int = 90) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def render_markdown(
    report: Mapping[str, Any], texts: Mapping[str, str], chart: str | None = None
) -> str:
    """The human report. `texts` maps skill hashes to their text (initial and best are shown);
    `chart` is the file name of the score chart written next to the report, if any."""
    cfg = report["config"]
    data = report["dataset"] or {}
    sizes = data.get("sizes", {})
    fin = report["final"]
    out: list[str] = [f"# skillopt report: run `{report['run']}`", ""]
    tr_, ev_, op_ = cfg.get("train", {}), cfg.get("evaluation", {}), cfg.get("optimizer", {})
    out += [
        f"- Environment **{cfg.get('env', {}).get('name')}**: {sizes.get('train', 0)} train, "
        f"{sizes.get('selection', 0)} selection, {sizes.get('test', 0)} test items; "
        f"task types: {', '.join(data.get('task_types', []))}",
        f"- {tr_.get('num_epochs')} epoch(s) x {data.get('steps_per_epoch', '?')} step(s), "
        f"batch {tr_.get('batch_size')}, seed {tr_.get('seed')}",
        f"- Gate: {ev_.get('gate_metric')} score, strict `>`"
        + ("" if ev_.get("use_gate", True) else " (gate OFF: every candidate force-accepted)")
        + f"; edit budget: {op_.get('lr_scheduler')} {op_.get('learning_rate')} -> "
        f"{op_.get('min_learning_rate')}",
        f"- Status: {'complete' if fin['done'] else 'in progress'}",
        "",
        "## Outcome",
        "",
        "| skill | hash | selection score | origin |",
        "|---|---|---|---|",
    ]
    base = report["baseline"]
    out.append(
        f"| initial | `{short(fin['initial_skill_hash'])}` | {_f(base and base['gate_score'])} | initial |"
    )
    out.append(
        f"| best | `{short(fin['best_skill_hash'])}` | {_f(fin['best_score'])} | {fin['best_origin']} |"
    )
    out.append(
        f"| final | `{short(fin['final_skill_hash'])}` | {_f(fin['final_score'])} | last current skill |"
    )
    t = report["totals"]
    if chart:
        out += ["", f"![Selection score per step]({chart})"]
    out += [
        "",
        f"{t['steps']} step(s): {t['accepts']} accepted, {t['rejects']} rejected, {t['skips']} skipped.",
        "",
        "## Steps",
        "",
        "| step | epoch | action | rollout hard | merged | budget | selected | applied | candidate "
        "| sel. hard | sel. soft | gate | current | best |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in report["steps"]:
        cache = " (cached)" if s["cache_hit"] else ""
        out.append(
            f"| {s['step']} | {s['epoch']} | {s['action']} | {_f(s['rollout_hard'])} "
            f"| {s['n_edits_merged']} | {s['edit_budget'] if s['edit_budget'] is not None else '–'} "
            f"| {s['n_edits_selected']} | {s['edits_applied']} "
            f"| {('`' + short(s['candidate_hash']) + '`') if s['candidate_hash'] else '–'} "
            f"| {_f(s['selection_hard'])} | {_f(s['selection_soft'])} "
            f"| {_f(s['candidate_gate_score'])}{cache} | {_f(s['current_score'])} | {_f(s['best_score'])} |"
        )
    out += ["", "## Step details", ""]
    for s in report["steps"]:
        out += [f"### Step {s['step']}: {s['action']}", "", f"Decision: {s['rule']}", ""]
        for i, edit in enumerate(s["edits"], start=1):
            verb = {"insert_after": "after", "replace": "replacing", "delete": "deleting"}
            where = (
                f" {verb.get(edit['op'], 'at')} `{_cell(edit['target'], 40)}`"
                if edit["target"]
                else ""
            )
            out.append(
                f"{i}. `{edit['op']}`{where} ({edit['source_type']}): {_cell(edit['content'])} "
                f"-> **{edit['status']}**"
            )
        out.append("")
    if fin["test"]:
        out += _test_table(fin["test"])
    if report["tokens"]:
        out += [
            "## Model calls",
            "",
            "| stage | calls | input tokens | output tokens | cost |",
            "|---|---|---|---|---|",
        ]
        for stage, tok in report["tokens"].items():
            cost = "–" if tok["cost"] is None else f"{tok['cost']:.4f}"
            out.append(f"| {stage} | {tok['calls']} | {tok['input']} | {tok['output']} | {cost} |")
        out.append("")
    best = texts.get(fin["best_skill_hash"])
    initial = texts.get(fin["initial_skill_hash"])
    if best is not None and initial is not None and best != initial:
        diff = unified_diff(initial, best, "initial", f"best ({short(fin['best_skill_hash'])})")
        out += ["## Best skill against the initial one", "", "```diff", diff.rstrip(), "```", ""]
    if best is not None:
        out += [
            f"## Best skill (`{short(fin['best_skill_hash'])}`)",
            "",
            "````markdown",
            best.rstrip(),
            "````",
            "",
        ]
    return "\n".join(out)


def _test_table(tests: Mapping[str, Any]) -> list[str]:
    roles = list(tests)
    kinds = sorted({k for r in roles for k in tests[r]["buckets"]} - {"overall"}) + ["overall"]
    out = [
        "## Test split (hard score by task type)",
        "",
        "| task type | " + " | ".join(roles) + " |",
        "|---|" + "---|" * len(roles),
    ]
    for kind in kinds:
        cells = []
        for role in roles:
            b = tests[role]["buckets"].get(kind)
            cells.append("–" if b is None else f"{b['hard']:.3f} (n={b['total']})")
        out.append(f"| {kind} | " + " | ".join(cells) + " |")
    return [*out, ""]
