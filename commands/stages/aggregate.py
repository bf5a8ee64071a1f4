"""Aggregation: the hierarchical merge of the step's patches (machine/stages/reflect.merge)."""

from __future__ import annotations

from skillopt.commands.context import StageContext
from skillopt.commands.stages import HandlerGen
from skillopt.commands.stages.calls import decide
from skillopt.machine.core.state import TrainerState
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages import reflect


def merge(cmd: tr.Merge, state: TrainerState, ctx: StageContext) -> HandlerGen:
    with ctx.progress.task(f"merge (step {cmd.step})", len(reflect.merge_tree(state)[1])) as bar:
        merged = decide(ctx, reflect.merge(cmd, state, ctx.text), bar.advance)
    yield merged
