"""Reflection (one optimizer call per minibatch) and the hierarchical merge of its patches.

Patches are edits, revise suggestions or whole skill candidates, by update mode. A reply we
cannot use is recorded as such: a reflection with `ok: false` and no patches, a merge node
whose result is its inputs' concatenation (`fallback: concatenate`)."""

from __future__ import annotations

from typing import Any

from skillopt.machine.core import events as ev
from skillopt.machine.core.edits import SkillCandidate
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.merge_plan import (
    MergeCall,
    default_source,
    merge_plan,
    payload,
    payload_field,
)
from skillopt.machine.loop import transitions as tr
from skillopt.machine.optimizer import asks
from skillopt.machine.optimizer.replies import CandidateText, candidate_of
from skillopt.machine.stages.protocol import Asking, Produced, StageGen, Texts, decided


def _candidates(produced: Produced, found: list[CandidateText]) -> list[SkillCandidate]:
    """Whole candidate skills become texts of the decision; the event carries their hashes."""
    return [candidate_of(c, produced.add(c.new_skill)) for c in found]


def minibatch(state: TrainerState, minibatch_id: str) -> ev.Minibatch:
    p = state.progress
    assert p is not None and p.reflection is not None
    return next(m for m in p.reflection.minibatches if m.id == minibatch_id)


def reflection(state: TrainerState, step: int, mb: ev.Minibatch, text: Texts) -> StageGen:
    answer = yield Asking(asks.reflection(state, mb, text), step, mb.id, "")
    base: dict[str, Any] = {
        "step": step,
        "minibatch_id": mb.id,
        "source_type": mb.source_type,
        "item_ids": mb.item_ids,
        "call": answer.call,
        "reask": answer.reask,
    }
    parsed = answer.value
    if parsed is None:
        return decided(ev.ReflectionProposed(ok=False, error=answer.error, **base))
    produced = Produced(text)
    proposed = ev.ReflectionProposed(
        ok=True,
        reasoning=parsed.reasoning,
        edits=parsed.edits,
        truncated=parsed.truncated,
        failure_summary=parsed.failure_summary,
        success_patterns=parsed.success_patterns,
        suggestions=parsed.suggestions,
        skill_candidates=_candidates(produced, parsed.candidates),
        appendix_notes=parsed.appendix_notes,
        **base,
    )
    return decided(proposed, list(produced.texts.values()))


def merge_tree(state: TrainerState) -> tuple[dict[str, list[Any]], list[MergeCall], str | None]:
    """The step's patches by minibatch id, the merge calls over them, and the root's id."""
    p = state.progress
    assert p is not None and p.reflection is not None
    mode = state.cfg.optimizer.skill_update_mode
    ordered = [p.proposals[m.id] for m in p.reflection.minibatches]
    ordered = [x for x in ordered if payload(x, mode)]
    results: dict[str, list[Any]] = {x.minibatch_id: list(payload(x, mode)) for x in ordered}
    calls, root = merge_plan(
        [x.minibatch_id for x in ordered if x.source_type == "failure"],
        [x.minibatch_id for x in ordered if x.source_type == "success"],
        state.cfg.gradient.merge_batch_size,
    )
    return results, calls, root


def merge(cmd: tr.Merge, state: TrainerState, text: Texts) -> StageGen:
    """The merge tree's shape is planned from the proposals' ids alone (merge_plan); each node
    merges its inputs' results with one call, the root's result is the step's patch."""
    mode = state.cfg.optimizer.skill_update_mode
    key = payload_field(mode)
    results, calls, root = merge_tree(state)
    produced = Produced(text)
    nodes: list[ev.MergeNode] = []
    for call in calls:
        patches = [results[i] for i in call.inputs]
        a = asks.merge_node(state, call.group, default_source(call.group), patches, produced)
        answer = yield Asking(a, cmd.step, call.id, f"nodes/{call.id}")
        node: dict[str, Any] = {
            "id": call.id,
            "level": call.level,
            "group": call.group,
            "inputs": list(call.inputs),
            "call": answer.call,
            "reask": answer.reask,
            "edits": [],
        }
        if answer.value is None:
            concat = [x for patch in patches for x in patch]
            merged = ev.MergeNode(
                **{**node, key: concat}, ok=False, error=answer.error, fallback="concatenate"
            )
        else:
            value = answer.value
            if key == "skill_candidates":
                value = _candidates(produced, value)
            merged = ev.MergeNode(**{**node, key: value}, ok=True)
        results[call.id] = list(payload(merged, mode))
        nodes.append(merged)
    assert root is not None, "a merge without patches (the step skips as no_patches)"
    event = ev.PatchesMerged(
        step=cmd.step, nodes=nodes, root=root, **{"edits": [], key: results[root]}
    )
    return decided(event, list(produced.texts.values()))
