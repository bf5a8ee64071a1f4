"""What `skillopt serve` shows, as data: pure functions of a run's state, its status view and
texts. They compose the report's own pieces (status view, report data, score chart, skill
history, `why`), so the dashboard says exactly what `status`, `report`, `skill log` and `why`
say. The shell (commands/serve/) reads the ledger and renders these with escaping templates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from skillopt.machine.core.state import TrainerState
from skillopt.machine.reports.charts import score_chart_svg
from skillopt.machine.reports.forensics import why
from skillopt.machine.reports.history import unified_diff, versions
from skillopt.machine.reports.views import report_data, status_view


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def spend_text(view: Mapping[str, Any]) -> str:
    """Tokens and dollars spent, with the budget when one is set (as `run`'s line says it)."""
    tokens = int(view.get("tokens") or 0)
    budget = view.get("budget") or {}
    text = f"{tokens:,} tokens"
    if budget.get("max_tokens") is not None:
        text += f" of {budget['max_tokens']:,}"
    cost = view.get("cost")
    if cost is not None and tokens:
        text += f", ${cost:.4f}"
        if budget.get("max_usd") is not None:
            text += f" of ${budget['max_usd']:.2f}"
    return text


def progress(view: Mapping[str, Any]) -> dict[str, Any]:
    """The live facts of a training run's status view, as display strings (the page and its
    JSON endpoint use the same ones, so a refresh shows what a reload would)."""
    total = int(view.get("total_steps") or 0)
    done = bool(view.get("done"))
    step = int(view.get("step") or 0)
    unusable = sum((view.get("unusable") or {}).values())
    failure = view.get("last_failure")
    return {
        "done": done,
        "events": int(view.get("events") or 0),
        # steps finished over the planned ones; a done run is full whatever its last step
        "fraction": 1.0 if done else (min(step, total) / total if total else 0.0),
        "fields": {
            "state": "done" if done else "in progress",
            "phase": str(view.get("phase", "")),
            "epoch": str(view.get("epoch", "")),
            "step": f"{step}/{total}",
            "events": str(view.get("events", 0)),
            "current": _f(view.get("current_score")),
            "best": _f(view.get("best_score")),
            "best_step": str(view.get("best_step", "")),
            "spend": spend_text(view),
            "unusable": str(unusable) if unusable else "none",
            "failure": ""
            if not failure
            else f"stage {failure['stage']}: {failure['error_type']}: {failure['message']}",
        },
    }


def runs_table(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per run. `entries`: the shell's {run, id, kind, created_at} with the training
    run's status view under `view`, or a bench run's `events` and `phase`."""
    rows = []
    for e in entries:
        base = {k: e[k] for k in ("run", "id", "kind", "created_at")}
        view = e.get("view")
        if view is None:  # a bench run, or a run whose events do not fold
            rows.append(
                base
                | {
                    "done": None,
                    "events": e.get("events") or 0,
                    "fraction": None,
                    "fields": {"phase": str(e.get("phase", "")), "events": str(e.get("events"))},
                }
            )
            continue
        rows.append(base | progress(view))
    return rows


def epoch_marks(steps: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The report's steps, each marked when it is the first of its epoch (a boundary row)."""
    out, last = [], None
    for s in steps:
        out.append({**s, "epoch_start": s["epoch"] != last})
        last = s["epoch"]
    return out


def run_page(state: TrainerState) -> dict[str, Any]:
    """Everything the run page shows: status, chart, steps with verdicts and rules, epoch
    boundaries, cost per stage, the skill versions."""
    report = report_data(state)
    view = status_view(state)
    return {
        "run": state.run_name,
        "status": view,
        "progress": progress(view),
        "report": report,
        "chart_svg": score_chart_svg(report),
        "steps": epoch_marks(report["steps"]),
        "versions": [
            asdict(v) | {"current": v.hash == state.current_hash, "best": v.hash == state.best_hash}
            for v in versions(state)
        ],
    }


def diff_lines(diff: str) -> list[dict[str, str]]:
    """A unified diff as lines with a kind (add, del, hunk, head, same) to colour them by."""
    out = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kind = "head"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "same"
        out.append({"kind": kind, "text": line})
    return out


def default_against(state: TrainerState, skill: str) -> str:
    """What a skill version is compared with unless told: its parent, else the initial skill."""
    mine = next((v for v in versions(state) if v.hash == skill), None)
    return (mine.parent if mine is not None else None) or state.initial_hash


def skill_page(
    state: TrainerState, skill: str, against: str, texts: Mapping[str, str]
) -> dict[str, Any]:
    """A skill version: its text, the diff against `against` (a full hash) and its `why`
    chain. `texts` maps hashes to texts (these two at least)."""
    found = versions(state)
    mine = next((v for v in found if v.hash == skill), None)
    diff = ""
    if against != skill:
        diff = unified_diff(texts.get(against, ""), texts.get(skill, ""), against[:12], skill[:12])
    return {
        "run": state.run_name,
        "skill": skill,
        "version": None if mine is None else asdict(mine),
        "text": texts.get(skill, ""),
        "against": against,
        "diff": diff_lines(diff),
        "why": why(state, skill),
        "versions": [asdict(v) for v in found],
    }
