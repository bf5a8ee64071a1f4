"""What commands print: status, the report (JSON) and its markdown. Pure functions of state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from skillopt.machine.core.canonical import short
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.spending import by_role, limits, spent
from skillopt.machine.loop.transitions import FINAL_TEST_ROLES, next_command
from skillopt.machine.reports.calls import markdown_lines, stage_tokens
from skillopt.machine.reports.history import unified_diff


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
        # optimizer replies unusable even after their re-ask, per stage ({} when none)
        "unusable": dict(sorted(state.unusable.items())),
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
        **({"warnings": list(state.warnings)} if state.warnings else {}),
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
        "steps": [{**asdict(r), **step_mechanisms(state, r.step)} for r in state.records],
        "epochs": epoch_boundaries(state),
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
        **({"unusable": dict(sorted(state.unusable.items()))} if state.unusable else {}),
        # rollouts answered by a recorded rollout of the same skill on the same item (no call)
        **({"reused": dict(sorted(state.reused.items()))} if state.reused else {}),
        "tokens": stage_tokens(state),
    }


def step_mechanisms(state: TrainerState, step: int) -> dict[str, Any]:
    """What the issue-3 mechanisms did in a finished step (None where they did not act)."""
    p = state.details.get(step)
    sel = p.selected if p else None
    cand = p.candidate if p else None
    d = sel.decision if sel else None
    a = p.appendix if p else None
    g = p.appendix_gate if p else None
    c = a.consolidation if a else None
    return {
        "update_mode": cand.mode if cand else None,
        "budget_control": sel.control if sel else None,
        "budget_decision": None
        if d is None
        else {
            "ok": d.ok,
            "requested": d.requested,
            "budget": sel.budget,  # type: ignore[union-attr]
            "confidence": d.confidence,
            "reasoning": d.reasoning,
            "risk_notes": d.risk_notes,
            "fallback": d.fallback,
        },
        "suggestions": [x.model_dump(mode="json") for x in sel.suggestions] if sel else [],
        "rewrite": None
        if cand is None or cand.rewrite is None
        else {
            "ok": cand.rewrite.ok,
            "change_summary": cand.rewrite.change_summary,
            "error": cand.rewrite.error,
        },
        "appendix": None
        if a is None
        else {
            "added": a.added,
            "duplicates": a.duplicates,
            "total": a.total,
            "skill_hash": a.skill_hash,
            "consolidated": None
            if c is None
            else {"kept": c.kept, "before": c.before, "after": len(c.notes)},
            "gate": _verdict(g),
        },
    }


def _verdict(g: Any) -> dict[str, Any] | None:
    """A slow-update or appendix gate verdict, as reports show it."""
    return None if g is None else {"action": g.action, "score": g.gate_score, "rule": g.rule}


def epoch_boundaries(state: TrainerState) -> list[dict[str, Any]]:
    """The slow update, meta skill and their comparison, per finished epoch boundary."""
    out = []
    for epoch in sorted({*state.slow_updates, *state.meta_skills, *state.reviews}):
        r, su, m = (
            state.reviews.get(epoch),
            state.slow_updates.get(epoch),
            state.meta_skills.get(epoch),
        )
        g = state.slow_gates.get(epoch)
        pairs = (su.pairs if su else None) or (m.pairs if m else [])
        counts: dict[str, int] = {}
        for pair in pairs:
            counts[pair.category] = counts.get(pair.category, 0) + 1
        out.append(
            {
                "epoch": epoch,
                "review": None
                if r is None
                else {
                    "policy": r.policy,
                    "target": r.target,
                    "prev": r.prev_hash,
                    "curr": r.curr_hash,
                },
                "pairs": dict(sorted(counts.items())),
                "slow_update": None
                if su is None
                else {
                    "action": su.action,
                    "skill_hash": su.skill_hash,
                    "content_hash": su.content_hash,
                    "gate": _verdict(g),
                },
                "meta_skill": None
                if m is None
                else {"action": m.action, "content_hash": m.content_hash},
            }
        )
    return out


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _cell(text: str, width: int = 90) -> str:
    flat = " ".join(text.split()).replace("|", "\\|")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# A line of the report's header: (text, style) spans, style "" (plain), "strong" or "code".
# Markdown and HTML render the same spans, so the two reports state the same facts.
Span = tuple[str, str]


def header_lines(report: Mapping[str, Any]) -> list[list[Span]]:
    """The report's config header: environment and splits, schedule, gate and edit budget,
    update mode and mechanisms, status, and the warnings recorded at init."""
    cfg = report["config"]
    data = report["dataset"] or {}
    sizes = data.get("sizes", {})
    tr_, ev_, op_ = cfg.get("train", {}), cfg.get("evaluation", {}), cfg.get("optimizer", {})
    gate_off = "" if ev_.get("use_gate", True) else " (gate OFF: every candidate force-accepted)"
    return [
        [
            ("Environment ", ""),
            (str(cfg.get("env", {}).get("name")), "strong"),
            (
                f": {sizes.get('train', 0)} train, {sizes.get('selection', 0)} selection, "
                f"{sizes.get('test', 0)} test items; task types: "
                f"{', '.join(data.get('task_types', []))}",
                "",
            ),
        ],
        [
            (
                f"{tr_.get('num_epochs')} epoch(s) x {data.get('steps_per_epoch', '?')} step(s), "
                f"batch {tr_.get('batch_size')}, seed {tr_.get('seed')}",
                "",
            )
        ],
        [
            (f"Gate: {ev_.get('gate_metric')} score, strict ", ""),
            (">", "code"),
            (
                f"{gate_off}; edit budget: {op_.get('lr_scheduler')} {op_.get('learning_rate')} "
                f"-> {op_.get('min_learning_rate')}",
                "",
            ),
        ],
        [
            (
                f"Update mode {op_.get('skill_update_mode', 'patch')}, edit budget control "
                f"{op_.get('lr_control_mode', 'fixed')}; step buffer "
                f"{_on(op_, 'use_step_buffer')}, slow update {_on(op_, 'use_slow_update')}, "
                f"meta skill {_on(op_, 'use_meta_skill')}, skill-aware appendix "
                f"{_on(op_, 'use_skill_aware_reflection')}",
                "",
            )
        ],
        [(f"Status: {'complete' if report['final']['done'] else 'in progress'}", "")],
        *([("Warning", "strong"), (f": {w}", "")] for w in report.get("warnings", [])),
    ]


def markdown_spans(spans: list[Span]) -> str:
    marks = {"": "", "strong": "**", "code": "`"}
    return "".join(f"{marks[style]}{text}{marks[style]}" for text, style in spans)


def render_markdown(
    report: Mapping[str, Any], texts: Mapping[str, str], chart: str | None = None
) -> str:
    """The human report. `texts` maps skill hashes to their text (initial and best are shown);
    `chart` is the file name of the score chart written next to the report, if any."""
    fin = report["final"]
    out: list[str] = [f"# skillopt report: run `{report['run']}`", ""]
    out += ["- " + markdown_spans(line) for line in header_lines(report)]
    out += [
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
        if s["stopped_after"] is not None:
            cache = f" ({s['stopped_after']} items: early reject)"
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
        out += _mechanism_lines(s)
        out.append("")
    out += _epoch_lines(report.get("epochs", []))
    if fin["test"]:
        out += _test_table(fin["test"])
    out += markdown_lines(report["tokens"])
    if report.get("reused"):
        counts = ", ".join(f"{phase} {n}" for phase, n in report["reused"].items())
        out += [
            f"**Reused rollouts** (a recorded rollout of the same skill on the same item, no "
            f"model call; `evaluation.reuse_rollouts`): {counts}.",
            "",
        ]
    if report.get("unusable"):
        counts = ", ".join(f"{stage} {n}" for stage, n in report["unusable"].items())
        out += [
            f"**Unusable optimizer replies** (after their re-ask, per stage): {counts}. "
            "A step whose reflections were all unusable is skipped as `reflection_unusable`.",
            "",
        ]
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


def _on(section: Mapping[str, Any], key: str) -> str:
    return "on" if section.get(key, False) else "off"


def _mechanism_lines(s: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for i, x in enumerate(s.get("suggestions", []), start=1):
        out.append(f"{i}. suggestion `{x['type']}` ({x['source_type']}): {_cell(x['instruction'])}")
    d = s.get("budget_decision")
    if d is not None:
        why = (
            f"{d['confidence']} confidence: {_cell(d['reasoning'], 60)}"
            if d["ok"]
            else "unusable reply, no edit"
        )
        out.append(
            f"- Edit budget chosen by the optimizer: {d['requested']} -> {d['budget']} ({why})"
        )
    r = s.get("rewrite")
    if r is not None:
        text = "; ".join(r["change_summary"]) if r["ok"] else f"unusable ({r['error']})"
        out.append(f"- Rewrite: {_cell(text)}")
    a = s.get("appendix")
    if a is not None:
        line = f"- Appendix: +{len(a['added'])} note(s), {a['duplicates']} duplicate(s), {a['total']} in all"
        c = a["consolidated"]
        if c is not None:
            line += f"; consolidated {c['before']} -> {c['after']} ({'kept' if c['kept'] else 'not kept'})"
        if a["gate"] is not None:
            line += f"; gate: {a['gate']['action']} ({a['gate']['rule']})"
        out.append(line)
    return out


EPOCH_HEADER = ["epoch", "pairs", "slow update", "meta skill"]


def epoch_rows(epochs: list[Mapping[str, Any]]) -> list[list[str]]:
    """The epoch-boundary table's cells (plain text), one row per finished boundary."""
    rows = []
    for e in epochs:
        pairs = ", ".join(f"{k} {v}" for k, v in e["pairs"].items()) or "–"
        su = e["slow_update"]
        slow = (
            "–"
            if su is None
            else su["action"] + (f" (gate: {su['gate']['action']})" if su["gate"] else "")
        )
        meta = "–" if e["meta_skill"] is None else e["meta_skill"]["action"]
        rows.append([str(e["epoch"]), pairs, slow, meta])
    return rows


def scores_by_task_type(tests: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the test split's hard score per task type, one column per skill."""
    roles = list(tests)
    kinds = sorted({k for r in roles for k in tests[r]["buckets"]} - {"overall"}) + ["overall"]
    rows = []
    for kind in kinds:
        cells = []
        for role in roles:
            b = tests[role]["buckets"].get(kind)
            cells.append("–" if b is None else f"{b['hard']:.3f} (n={b['total']})")
        rows.append([kind, *cells])
    return ["task type", *roles], rows


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|---|" + "---|" * (len(header) - 1),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def _epoch_lines(epochs: list[Mapping[str, Any]]) -> list[str]:
    if not epochs:
        return []
    return ["## Epoch boundaries", "", *_md_table(EPOCH_HEADER, epoch_rows(epochs)), ""]


def _test_table(tests: Mapping[str, Any]) -> list[str]:
    header, rows = scores_by_task_type(tests)
    return ["## Test split (hard score by task type)", "", *_md_table(header, rows), ""]
