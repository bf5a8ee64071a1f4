"""The shape of the hierarchical merge: which inputs go into which merge call.

The shape depends only on the ids of the patches and the group width, never on what the
calls return, so it is planned up front, followed by the handler and re-derived by verify.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MergeCall:
    id: str
    level: int
    group: str
    inputs: tuple[str, ...]


def _group_plan(group: str, ids: Sequence[str], width: int) -> tuple[list[MergeCall], str | None]:
    calls: list[MergeCall] = []
    level, layer = 1, list(ids)
    while len(layer) > 1:
        merged: list[str] = []
        for index, start in enumerate(range(0, len(layer), width)):
            chunk = layer[start : start + width]
            if len(chunk) == 1:
                merged.append(chunk[0])
                continue
            call = MergeCall(f"{group}-L{level}-{index}", level, group, tuple(chunk))
            calls.append(call)
            merged.append(call.id)
        layer, level = merged, level + 1
    return calls, (layer[0] if layer else None)


def merge_plan(
    failure_ids: Sequence[str], success_ids: Sequence[str], width: int
) -> tuple[list[MergeCall], str]:
    """Merge calls in execution order and the id whose edits are the step's merged patch:
    failures and successes apart in groups of `width`, then one final merge of the two roots."""
    calls: list[MergeCall] = []
    roots: list[str] = []
    for group, ids in (("failure", failure_ids), ("success", success_ids)):
        group_calls, root = _group_plan(group, ids, width)
        calls += group_calls
        if root is not None:
            roots.append(root)
    if not roots:
        raise ValueError("nothing to merge")
    if len(roots) == 2:
        final = MergeCall("final-L1-0", 1, "final", tuple(roots))
        return [*calls, final], final.id
    return calls, roots[0]


def default_source(group: str) -> str:
    return "success" if group == "success" else "failure"


def payload_field(mode: str) -> str:
    """Which field of reflections and merge nodes carries the proposal in an update mode."""
    return {
        "patch": "edits",
        "rewrite_from_suggestions": "suggestions",
        "full_rewrite_minibatch": "skill_candidates",
    }[mode]


def payload(x: object, mode: str) -> list:  # type: ignore[type-arg]
    return list(getattr(x, payload_field(mode)))
