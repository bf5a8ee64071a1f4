"""Reflection: the step's minibatches (planned in machine/stages/plans), one optimizer call
per minibatch, concurrently; proposals are recorded in minibatch order."""

from __future__ import annotations

from skillopt.commands.context import StageContext
from skillopt.commands.executors.local import ordered_map
from skillopt.commands.stages import HandlerGen
from skillopt.commands.stages.calls import decide
from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages import plans
from skillopt.machine.stages import reflect as stages


def plan_reflection(cmd: tr.PlanReflection, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield decide(ctx, plans.plan_reflection(cmd, state))


def reflect(cmd: tr.Reflect, state: TrainerState, ctx: StageContext) -> HandlerGen:
    scores = state.step_items(cmd.step)
    todo = [stages.minibatch(state, m) for m in cmd.pending]
    ctx.texts([scores[i].trajectory_hash for m in todo for i in m.item_ids])

    def one(mb: ev.Minibatch) -> ev.Event:
        return decide(ctx, stages.reflection(state, cmd.step, mb, ctx.text))

    with ctx.progress.task(f"reflect (step {cmd.step})", len(todo)) as bar:
        for proposal in ordered_map(one, todo, state.cfg.gradient.workers):
            yield proposal
            bar.advance()
