"""Optimizer prompt assembly: templates (markdown from skills/optimizer) filled with values."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from machine.edits import Edit

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


def reflection_user_message(skill: str, budget: int, trajectories: Sequence[str]) -> str:
    return (
        f"## Current Skill\n\n{skill.strip()}\n\n"
        f"## Budget\n\nProduce at most L={budget} edits.\n\n"
        f"## Trajectories ({len(trajectories)})\n\n" + "\n".join(trajectories)
    )


def edits_json(edits: Sequence[Edit]) -> str:
    return json.dumps([e.model_dump(mode="json") for e in edits], indent=1, ensure_ascii=False)


def merge_user_message(skill: str, group: str, patches: Sequence[Sequence[Edit]]) -> str:
    blocks = [f"### Patch {i}\n{edits_json(p)}" for i, p in enumerate(patches)]
    return f"## Current Skill\n\n{skill.strip()}\n\n## Merge group: {group}\n\n" + "\n\n".join(
        blocks
    )


def ranking_user_message(skill: str, edits: Sequence[Edit], budget: int) -> str:
    lines = [
        f"[{i}] op={e.op} target={e.target!r} content={e.content!r} support={e.support_count}"
        for i, e in enumerate(edits)
    ]
    return (
        f"## Current Skill\n\n{skill.strip()}\n\n"
        f"## Budget\n\nSelect at most {budget} edits.\n\n## Candidate edits\n\n" + "\n".join(lines)
    )


def edit_hints(edits: Sequence[Edit]) -> list[dict[str, Any]]:
    return [e.model_dump(mode="json") for e in edits]


def reask_message(error: str) -> str:
    """The one follow-up sent when a reply cannot be used."""
    return (
        f"Your reply could not be used: {error}. Reply again with exactly one JSON object, "
        "in a ```json fenced block, in the format the instructions ask for."
    )
