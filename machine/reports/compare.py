"""`skillopt compare`: runs side by side (a fork and its origin, two seeds, two models).

Config differences, baseline / best / final selection scores and test scores (per task type),
the verdict of every step, the edits one run accepted and another did not, and calls, tokens
and dollars per role. A fork shares its origin's first events: that prefix is named.
A pure function of the runs' states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.fork import flatten
from skillopt.machine.decisions.spending import by_role

ACCEPTED = ("accept", "accept_new_best", "force_accept")


def _edit(row: dict[str, str]) -> str:
    target = f" {row['target']!r}" if row.get("target") else ""
    return f"{row['op']}{target}: {row['content']}".strip()


def _accepted_edits(state: TrainerState) -> list[str]:
    return [
        _edit(row)
        for r in state.records
        if r.action in ACCEPTED
        for row in r.edits
        if str(row.get("status", "")).startswith("applied")
    ]


def _test(state: TrainerState) -> dict[str, Any]:
    return {
        role: {"score": e.gate_score, "by_type": {k: v.hard for k, v in e.buckets.items()}}
        for role, e in state.final_tests.items()
    }


def _one(name: str, s: TrainerState) -> dict[str, Any]:
    return {
        "run": name,
        "forked_from": s.fork_origin,
        "baseline": s.baseline.gate_score if s.baseline else None,
        "best": s.best_score if s.baseline else None,
        "best_step": s.best_step,
        "final": s.current_score if s.baseline else None,
        "final_selection": s.final_selection.gate_score if s.final_selection else None,
        "test": _test(s),
        "verdicts": {r.step: r.action for r in s.records},
        "accepted_edits": _accepted_edits(s),
        "by_role": by_role(s) if s.config is not None else {},
        "done": s.completed is not None,
    }


def compare(runs: Sequence[tuple[str, TrainerState]]) -> dict[str, Any]:
    facts = [_one(name, s) for name, s in runs]
    configs = [flatten(dict(s.config_data)) for _, s in runs]
    keys = sorted(set().union(*configs))
    differences = {
        k: [c.get(k) for c in configs] for k in keys if len({repr(c.get(k)) for c in configs}) > 1
    }
    edit_sets = [set(f["accepted_edits"]) for f in facts]
    only = {
        f["run"]: sorted(mine - set().union(*(o for o in edit_sets if o is not mine)))
        for f, mine in zip(facts, edit_sets, strict=True)
    }
    steps = sorted(set().union(*(f["verdicts"] for f in facts)))
    return {
        "runs": [f["run"] for f in facts],
        "config_differences": differences,
        "runs_facts": facts,
        "verdicts": [{"step": k, **{f["run"]: f["verdicts"].get(k) for f in facts}} for k in steps],
        "accepted_only_in": only,
    }


def _f(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def render_compare(c: dict[str, Any]) -> str:
    runs, facts = c["runs"], c["runs_facts"]
    out = [f"# Compare: {', '.join(f'`{r}`' for r in runs)}", ""]
    for f in facts:
        origin = f["forked_from"]
        if origin:
            out.append(
                f"- `{f['run']}` is a fork of `{origin['run_name']}`: its first "
                f"{origin['seq']} events are that run's"
            )
    if any(f["forked_from"] for f in facts):
        out.append("")
    out += ["## Config differences", ""]
    if c["config_differences"]:
        out += ["| key | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
        for key, values in c["config_differences"].items():
            out.append(f"| `{key}` | " + " | ".join(f"`{v}`" for v in values) + " |")
    else:
        out.append("None: the runs have the same settings.")
    out += ["", "## Scores", "", "| | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for label, key in (("baseline", "baseline"), ("best", "best"), ("final", "final")):
        out.append(f"| {label} (selection) | " + " | ".join(_f(f[key]) for f in facts) + " |")
    roles = sorted({role for f in facts for role in f["test"]})
    for role in roles:
        cells = [_f(f["test"][role]["score"]) if role in f["test"] else "–" for f in facts]
        out.append(f"| test: {role} | " + " | ".join(cells) + " |")
    out += [
        "",
        "## Verdicts",
        "",
        "| step | " + " | ".join(runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for row in c["verdicts"]:
        out.append(f"| {row['step']} | " + " | ".join(row[r] or "–" for r in runs) + " |")
    out += ["", "## Edits accepted in one run only", ""]
    for run, edits in c["accepted_only_in"].items():
        out.append(f"- `{run}`: " + (f"{len(edits)}" if edits else "none"))
        out += [f"  - {e[:160]}" for e in edits]
    out += ["", "## Calls, tokens and cost per role", ""]
    out += ["| run | role | calls | tokens | cost |", "|---|---|---|---|---|"]
    for f in facts:
        for role, r in f["by_role"].items():
            cost = "–" if r["cost"] is None else f"{r['cost']:.4f}"
            out.append(f"| {f['run']} | {role} | {r['calls']} | {r['tokens']} | {cost} |")
    return "\n".join(out) + "\n"
