"""The offline optimizer's answers for the update modes and the epoch-level calls.

Each function takes a request's hints (and the patch-mode reflection the offline model already
writes) and returns the JSON object a real model would send. Deterministic, like the rest of
the offline model.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

ADD = "Add the rule: "
SWAP = "Replace the line: "
ARROW = " => "


def _suggestion(edit: Mapping[str, Any]) -> dict[str, Any]:
    content = str(edit.get("content", "")).strip()
    if edit["op"] == "replace":
        instruction = f"{SWAP}{edit['target']}{ARROW}{content}"
        kind, title = "clarify", "Correct a rule"
    else:
        instruction = f"{ADD}{content.splitlines()[-1].lstrip('- ').strip()}"
        kind, title = "add_rule", "State a missing rule"
    return {
        "type": kind,
        "title": title,
        "motivation": "failures in this minibatch",
        "instruction": instruction,
        "priority_hint": "high",
    }


def apply_suggestions(skill: str, suggestions: Sequence[Mapping[str, Any]], heading: str) -> str:
    """What the offline rewrite does: carries out add-rule and replace-line instructions."""
    for s in suggestions:
        text = str(s.get("instruction", ""))
        if text.startswith(SWAP) and ARROW in text:
            old, new = text[len(SWAP) :].split(ARROW, 1)
            skill = skill.replace(old, new, 1)
        elif text.startswith(ADD):
            rule = f"- {text[len(ADD) :]}"
            if rule in skill:
                continue
            if heading in skill:
                skill = skill.replace(heading, f"{heading}\n{rule}", 1)
            else:
                skill = f"{skill.rstrip()}\n\n{heading}\n\n{rule}\n"
    return skill


def shape_reflection(obj: dict[str, Any], hints: Mapping[str, Any], heading: str) -> dict[str, Any]:
    """Turn the patch-mode reflection into the mode's payload; add skill-aware notes."""
    patch = obj["patch"]
    edits = patch.get("edits", [])
    mode = hints.get("mode", "patch")
    if mode == "rewrite_from_suggestions":
        patch["revise_suggestions"] = [_suggestion(e) for e in edits]
        patch["edits"] = []
    elif mode == "full_rewrite_minibatch":
        patch["edits"] = []
        if edits:
            new = apply_suggestions(hints["skill"], [_suggestion(e) for e in edits], heading)
            patch["skill_candidates"] = [
                {
                    "title": "Rules for the failing task types",
                    "change_summary": [_suggestion(e)["instruction"] for e in edits],
                    "new_skill": new,
                }
            ]
    if hints.get("skill_aware"):
        lapses = [
            row["failure_type"]
            for row in obj.get("failure_summary", [])
            if "stated but not followed" in str(row.get("description", ""))
        ]
        obj["appendix_notes"] = [
            f"Before answering a {t} task, re-read its rule in the skill and apply it exactly."
            for t in lapses
        ]
    return obj


def merge_suggestions(patches: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    merged: dict[str, dict[str, Any]] = {}
    for patch in patches:
        for s in patch:
            key = str(s.get("instruction", ""))
            if key in merged:
                merged[key]["support_count"] += int(s.get("support_count", 1))
            else:
                merged[key] = {**s, "support_count": int(s.get("support_count", 1))}
    rows = sorted(merged.values(), key=lambda s: s.get("source_type") != "failure")
    return {"reasoning": f"Merged {len(rows)} distinct suggestions.", "revise_suggestions": rows}


def merge_candidates(patches: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, Any]:
    pool = [c for patch in patches for c in patch]
    best = max(
        pool,
        key=lambda c: (c.get("source_type") == "failure", int(c.get("support_count", 1))),
    )
    return {"reasoning": "Kept the best-supported rewrite.", "skill_candidates": [best]}


def budget(hints: Mapping[str, Any]) -> dict[str, Any]:
    available = int(hints["available"])
    rate = float(hints["failure_rate"])
    count = available if rate >= 0.5 else max(1, available // 2)
    return {
        "learning_rate": count,
        "reasoning": f"failure rate {rate:.2f}: {'move fast' if rate >= 0.5 else 'be careful'}",
        "confidence": "high" if rate >= 0.5 else "medium",
        "risk_notes": [] if rate >= 0.5 else ["the skill already works for most items"],
    }


def rewrite(hints: Mapping[str, Any], heading: str) -> dict[str, Any]:
    new = apply_suggestions(hints["skill"], hints["suggestions"], heading)
    summary = [str(s.get("title", "")) for s in hints["suggestions"]]
    return {
        "reasoning": "Applied the selected suggestions.",
        "change_summary": summary,
        "new_skill": new,
    }


def _counts(pairs: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    out = {"improved": 0, "regressed": 0, "persistent_fail": 0, "stable_success": 0}
    for p in pairs:
        out[str(p["category"])] += 1
    return out


def slow_update(hints: Mapping[str, Any]) -> dict[str, Any]:
    c = _counts(hints["pairs"])
    lines = [
        f"- Last epoch: {c['improved']} improved, {c['regressed']} regressed, "
        f"{c['persistent_fail']} still failing.",
        "- Apply every formatting rule above literally; check the answer's format last.",
    ]
    return {"reasoning": f"comparison {c}", "slow_update_content": "\n".join(lines)}


def meta_skill(hints: Mapping[str, Any]) -> dict[str, Any]:
    c = _counts(hints["pairs"])
    lines = [
        f"- Epoch {hints['epoch']}: edits stating a house rule explicitly helped "
        f"({c['improved']} improved, {c['regressed']} regressed).",
        "- Prefer replacing a wrong rule over adding examples; examples lengthen the skill.",
    ]
    return {"reasoning": "what the epoch taught", "meta_skill_content": "\n".join(lines)}


def consolidate(hints: Mapping[str, Any]) -> dict[str, Any]:
    notes = [str(n) for n in hints["notes"]]
    kinds = [m.group(1) for n in notes if (m := re.search(r"answering an? (\w+) task", n))]
    rest = [n for n in notes if not re.search(r"answering an? (\w+) task", n)]
    if len(kinds) < 2:
        return {"appendix_notes": notes}
    joined = ", ".join(dict.fromkeys(kinds))
    merged = (
        f"Before answering a task ({joined}), re-read its rule in the skill and apply it exactly."
    )
    return {"appendix_notes": [merged, *rest]}
