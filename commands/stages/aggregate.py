"""Aggregation: hierarchical merge of the step's patches, failures and successes apart, then a
final merge with failure priority. A merge reply we cannot use is recorded on its node, and the
node falls back to concatenating its inputs, visibly."""

from __future__ import annotations

from collections.abc import Sequence

from commands.context import StageContext, load_template
from commands.stages import HandlerGen
from commands.stages.calls import ask_optimizer
from machine import events as ev
from machine import transitions as tr
from machine.edits import Edit
from machine.prompts import edit_hints, merge_user_message
from machine.replies import ReplyError, parse_merge
from machine.state import TrainerState

Patch = tuple[str, list[Edit]]  # (minibatch or node id, edits)


def _merge_call(
    ctx: StageContext, skill: str, group: str, level: int, index: int, inputs: Sequence[Patch]
) -> ev.MergeNode:
    node_id = f"{group}-L{level}-{index}"
    patches = [edits for _, edits in inputs]
    hints = {"group": group, "patches": [edit_hints(p) for p in patches]}
    reply, call = ask_optimizer(
        ctx, "merge", load_template("merge"), merge_user_message(skill, group, patches), hints
    )
    ids = [i for i, _ in inputs]
    try:
        _, edits = parse_merge(reply.text, "failure" if group != "success" else "success")
    except ReplyError as exc:
        concat = [e for p in patches for e in p]
        return ev.MergeNode(
            id=node_id,
            level=level,
            group=group,
            inputs=ids,
            ok=False,  # type: ignore[arg-type]
            error=str(exc),
            fallback="concatenate",
            edits=concat,
            call=call,
        )
    return ev.MergeNode(
        id=node_id,
        level=level,
        group=group,
        inputs=ids,
        ok=True,
        edits=edits,
        call=call,  # type: ignore[arg-type]
    )


def _merge_group(
    ctx: StageContext,
    skill: str,
    group: str,
    patches: list[Patch],
    width: int,
    nodes: list[ev.MergeNode],
) -> Patch | None:
    level, layer = 1, patches
    while len(layer) > 1:
        merged: list[Patch] = []
        for index, start in enumerate(range(0, len(layer), width)):
            chunk = layer[start : start + width]
            if len(chunk) == 1:
                merged.append(chunk[0])
                continue
            node = _merge_call(ctx, skill, group, level, index, chunk)
            nodes.append(node)
            merged.append((node.id, list(node.edits)))
        layer, level = merged, level + 1
    return layer[0] if layer else None


def merge(cmd: tr.Merge, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None and p.reflection is not None
    skill = ctx.text(p.parent_hash)
    width = state.cfg.gradient.merge_batch_size
    ordered = [p.proposals[m.id] for m in p.reflection.minibatches]
    groups = {
        kind: [
            (x.minibatch_id, list(x.edits)) for x in ordered if x.source_type == kind and x.edits
        ]
        for kind in ("failure", "success")
    }
    nodes: list[ev.MergeNode] = []
    roots = [
        r
        for kind in ("failure", "success")
        if (r := _merge_group(ctx, skill, kind, groups[kind], width, nodes)) is not None
    ]
    with ctx.progress.task(f"merge (step {cmd.step})", 1) as bar:
        if len(roots) == 2:
            node = _merge_call(ctx, skill, "final", 1, 0, roots)
            nodes.append(node)
            root: Patch = (node.id, list(node.edits))
        else:
            root = roots[0]
        bar.advance()
    yield ev.PatchesMerged(step=cmd.step, nodes=nodes, root=root[0], edits=root[1])
