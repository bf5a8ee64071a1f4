"""Optimizer prompt assembly: templates (markdown from skills/optimizer) filled with values."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from skillopt.machine.core.edits import Edit, Suggestion

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def render(template: str, **values: object) -> str:
    """Replace {{name}} placeholders; a placeholder without a value is a programming error."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template placeholder {{{{{name}}}}} has no value")
        return str(values[name])

    return _PLACEHOLDER.sub(fill, template)


def trajectory_block(index: int, item_id: str, task_type: str, fail_reason: str, text: str) -> str:
    status = f"FAILED ({fail_reason})" if fail_reason else "PASSED"
    return f"### Trajectory {index}: {item_id} [{task_type}] {status}\n{text.strip()}\n"


SKILL_HEAD = "## Current Skill\n\n"


def skill_prefix(user: str, skill: str, heading: str = SKILL_HEAD) -> int:
    """How many leading characters of a user message run through its current-skill section
    (`heading` and the skill): the part a step's calls and a re-ask repeat, which a provider
    may cache (0 when the message has no such section)."""
    head = f"{heading}{skill.strip()}\n\n"
    at = user.find(head)
    return at + len(head) if at >= 0 else 0


def context_sections(buffer: str = "", meta: str = "") -> str:
    """The optional step buffer and optimizer meta skill; empty when neither is in use, so the
    prompts of runs without them are unchanged."""
    out = ""
    if buffer:
        out += f"## Previous Steps in This Epoch\n\n{buffer.strip()}\n\n"
    if meta:
        out += f"## Optimizer Meta Skill\n\n{meta.strip()}\n\n"
    return out


def reflection_user_message(
    skill: str,
    budget: int,
    trajectories: Sequence[str],
    buffer: str = "",
    meta: str = "",
    unit: str = "edits",
) -> str:
    budget_line = (
        f"Produce at most L={budget} {unit}."
        if unit != "skill"
        else ("Produce exactly one candidate skill.")
    )
    return (
        f"## Current Skill\n\n{skill.strip()}\n\n"
        f"## Budget\n\n{budget_line}\n\n"
        + context_sections(buffer, meta)
        + f"## Trajectories ({len(trajectories)})\n\n"
        + "\n".join(trajectories)
    )


def models_json(items: Sequence[BaseModel | dict[str, Any]]) -> str:
    rows = [x.model_dump(mode="json") if isinstance(x, BaseModel) else x for x in items]
    return json.dumps(rows, indent=1, ensure_ascii=False)


def merge_user_message(
    skill: str, group: str, patches: Sequence[Sequence[BaseModel | dict[str, Any]]], meta: str = ""
) -> str:
    """Patches are lists of edits, suggestions or skill candidates (with their texts inlined)."""
    blocks = [f"### Patch {i}\n{models_json(p)}" for i, p in enumerate(patches)]
    return (
        f"## Current Skill\n\n{skill.strip()}\n\n"
        + context_sections(meta=meta)
        + f"## Merge group: {group}\n\n"
        + "\n\n".join(blocks)
    )


def pool_lines(pool: Sequence[Edit | Suggestion]) -> list[str]:
    out = []
    for i, x in enumerate(pool):
        if isinstance(x, Edit):
            out.append(
                f"[{i}] op={x.op} target={x.target!r} content={x.content!r} support={x.support_count}"
            )
        else:
            out.append(
                f"[{i}] type={x.type} title={x.title!r} instruction={x.instruction!r} "
                f"priority={x.priority_hint} support={x.support_count}"
            )
    return out


def ranking_user_message(
    skill: str, edits: Sequence[Edit | Suggestion], budget: int, meta: str = ""
) -> str:
    unit = "edits" if all(isinstance(x, Edit) for x in edits) else "suggestions"
    return (
        f"## Current Skill\n\n{skill.strip()}\n\n"
        f"## Budget\n\nSelect at most {budget} {unit}.\n\n"
        + context_sections(meta=meta)
        + f"## Candidate {unit}\n\n"
        + "\n".join(pool_lines(edits))
    )


def budget_user_message(
    skill: str,
    pool: Sequence[Edit | Suggestion],
    rollout: tuple[int, float, float],
    buffer: str = "",
    meta: str = "",
) -> str:
    n, hard, soft = rollout
    return (
        f"## Current Skill\n\n{skill.strip()}\n\n"
        f"## This step's rollout\n\nn={n} hard={hard:.4f} soft={soft:.4f}\n\n"
        + context_sections(buffer, meta)
        + f"## Candidates ({len(pool)} available)\n\n"
        + "\n".join(pool_lines(pool))
    )


def rewrite_user_message(skill: str, suggestions: Sequence[Suggestion], buffer: str = "") -> str:
    return (
        f"## Current Skill\n\n{skill.strip()}\n\n"
        + context_sections(buffer)
        + f"## Selected suggestions (priority order)\n\n{models_json(suggestions)}"
    )


def comparison_block(rows: Sequence[tuple[str, str, str, str]]) -> str:
    """(item id, category, previous trajectory, current trajectory) per pair."""
    out = []
    for item_id, cat, prev, curr in rows:
        out.append(
            f"### {item_id}: {cat}\n#### previous\n{prev.strip()}\n#### current\n{curr.strip()}\n"
        )
    return "\n".join(out) if out else "(no pairs)"


def slow_update_user_message(
    prev_skill: str, skill: str, guidance: str, pairs: Sequence[tuple[str, str, str, str]]
) -> str:
    return (
        f"## Previous epoch's last skill\n\n{prev_skill.strip()}\n\n"
        f"## Current Skill\n\n{skill.strip()}\n\n"
        f"## Guidance so far\n\n{guidance.strip() or '(none)'}\n\n"
        f"## Comparison ({len(pairs)} pairs)\n\n" + comparison_block(pairs)
    )


def meta_skill_user_message(
    prev_skill: str, skill: str, memory: str, pairs: Sequence[tuple[str, str, str, str]]
) -> str:
    return (
        f"## Previous epoch's last skill\n\n{prev_skill.strip()}\n\n"
        f"## This epoch's last skill\n\n{skill.strip()}\n\n"
        f"## Previous memory\n\n{memory.strip() or '(none)'}\n\n"
        f"## Comparison ({len(pairs)} pairs)\n\n" + comparison_block(pairs)
    )


def consolidation_user_message(notes: Sequence[str]) -> str:
    lines = "\n".join(f"- {n}" for n in notes)
    return f"## Appendix notes ({len(notes)})\n\n{lines}"


def edit_hints(edits: Sequence[Edit]) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in edits]


def reask_message(error: str) -> str:
    """The one follow-up sent when a reply cannot be used."""
    return (
        f"Your reply could not be used: {error}. Reply again with exactly one JSON object, "
        "in a ```json fenced block, in the format the instructions ask for."
    )
