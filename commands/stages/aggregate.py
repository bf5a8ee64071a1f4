"""Aggregation: the hierarchical merge of the step's patches (machine/merge.py plans its shape).
A merge reply we cannot use is recorded on its node, whose edits then are its inputs'
concatenation, visibly (`fallback: concatenate`)."""

from __future__ import annotations

from commands.context import StageContext, load_template
from commands.stages import HandlerGen
from commands.stages.calls import ask_and_parse
from machine import events as ev
from machine import transitions as tr
from machine.edits import Edit
from machine.merge import MergeCall, default_source, merge_plan
from machine.prompts import edit_hints, merge_user_message
from machine.replies import MERGE_SCHEMA, parse_merge
from machine.state import TrainerState


def _merge_call(
    ctx: StageContext, step: int, skill: str, call: MergeCall, patches: list[list[Edit]]
) -> ev.MergeNode:
    hints = {"group": call.group, "patches": [edit_hints(p) for p in patches]}
    user = merge_user_message(skill, call.group, patches)
    answer = ask_and_parse(
        ctx,
        "merge",
        load_template("merge"),
        user,
        hints,
        MERGE_SCHEMA,
        lambda text: parse_merge(text, default_source(call.group))[1],
        step=step,
        unit=call.id,
    )
    node = {
        "id": call.id,
        "level": call.level,
        "group": call.group,
        "inputs": list(call.inputs),
        "call": answer.call,
        "reask": answer.reask,
    }
    if answer.value is None:
        concat = [e for p in patches for e in p]
        return ev.MergeNode(
            **node, ok=False, error=answer.error, fallback="concatenate", edits=concat
        )
    return ev.MergeNode(**node, ok=True, edits=answer.value)


def merge(cmd: tr.Merge, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None and p.reflection is not None
    skill = ctx.text(p.parent_hash)
    ordered = [p.proposals[m.id] for m in p.reflection.minibatches if p.proposals[m.id].edits]
    edits: dict[str, list[Edit]] = {x.minibatch_id: list(x.edits) for x in ordered}
    calls, root = merge_plan(
        [x.minibatch_id for x in ordered if x.source_type == "failure"],
        [x.minibatch_id for x in ordered if x.source_type == "success"],
        state.cfg.gradient.merge_batch_size,
    )
    nodes: list[ev.MergeNode] = []
    with ctx.progress.task(f"merge (step {cmd.step})", len(calls)) as bar:
        for call in calls:
            node = _merge_call(ctx, cmd.step, skill, call, [edits[i] for i in call.inputs])
            edits[node.id] = list(node.edits)
            nodes.append(node)
            bar.advance()
    yield ev.PatchesMerged(step=cmd.step, nodes=nodes, root=root, edits=edits[root])
