"""Select, update, gate, and the skip edges of a step: the shell around machine/stages."""

from __future__ import annotations

from skillopt.commands.context import StageContext
from skillopt.commands.stages import HandlerGen
from skillopt.commands.stages.calls import decide
from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.steps import step_completion
from skillopt.machine.loop import transitions as tr
from skillopt.machine.loop.reducer import apply
from skillopt.machine.stages import update as stages
from skillopt.machine.stages import verdicts


def select(cmd: tr.Select, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield decide(ctx, stages.select(cmd, state, ctx.text))


def update(cmd: tr.Update, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield decide(ctx, stages.update(cmd, state, ctx.text))


def skip_step(cmd: tr.SkipStep, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield with_completion(state, decide(ctx, verdicts.skip_step(cmd, state)))


def gate(cmd: tr.Gate, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield with_completion(state, decide(ctx, verdicts.gate(cmd, state)))


def with_completion(state: TrainerState, verdict: ev.Event) -> list[ev.Event]:
    """The verdict, and the step's completion in the same transaction when nothing (an appendix
    flush) comes between them."""
    after = apply(state, verdict)
    if isinstance(tr.next_command(after), tr.CompleteStep):
        return [verdict, step_completion(after)]
    return [verdict]


def complete_step(cmd: tr.CompleteStep, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """After an appendix flush (or a verdict recorded without its completion)."""
    yield decide(ctx, verdicts.complete_step(state))
