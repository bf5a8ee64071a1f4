"""Aggregation: the hierarchical merge of the step's patches (machine/merge.py plans its shape).
Patches are edits, revise suggestions or whole skill candidates, by update mode. A merge reply
we cannot use is recorded on its node, whose result then is its inputs' concatenation, visibly
(`fallback: concatenate`)."""

from __future__ import annotations

from typing import Any

from commands.context import StageContext
from commands.stages import HandlerGen
from commands.stages.calls import send
from commands.stages.reflect import store_candidates
from machine import asks
from machine import events as ev
from machine import transitions as tr
from machine.merge import MergeCall, default_source, merge_plan, payload, payload_field
from machine.state import TrainerState


def _merge_call(
    ctx: StageContext, state: TrainerState, step: int, call: MergeCall, patches: list[list[Any]]
) -> ev.MergeNode:
    a = asks.merge_node(state, call.group, default_source(call.group), patches, ctx.text)
    answer = send(ctx, a, step=step, unit=call.id)
    key = payload_field(state.cfg.optimizer.skill_update_mode)
    node = {
        "id": call.id,
        "level": call.level,
        "group": call.group,
        "inputs": list(call.inputs),
        "call": answer.call,
        "reask": answer.reask,
        "edits": [],
    }
    if answer.value is None:
        concat = [x for p in patches for x in p]
        return ev.MergeNode(
            **{**node, key: concat}, ok=False, error=answer.error, fallback="concatenate"
        )
    value = answer.value
    if key == "skill_candidates":
        value = store_candidates(ctx, value)
    return ev.MergeNode(**{**node, key: value}, ok=True)


def merge(cmd: tr.Merge, state: TrainerState, ctx: StageContext) -> HandlerGen:
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
    nodes: list[ev.MergeNode] = []
    with ctx.progress.task(f"merge (step {cmd.step})", len(calls)) as bar:
        for call in calls:
            node = _merge_call(ctx, state, cmd.step, call, [results[i] for i in call.inputs])
            results[node.id] = list(payload(node, mode))
            nodes.append(node)
            bar.advance()
    key = payload_field(mode)
    merged = {"edits": [], key: results[root]}
    yield ev.PatchesMerged(step=cmd.step, nodes=nodes, root=root, **merged)
