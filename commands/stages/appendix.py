"""The skill-aware appendix flush (machine/stages/verdicts.flush_appendix decides it)."""

from __future__ import annotations

from skillopt.commands.context import StageContext
from skillopt.commands.stages import HandlerGen
from skillopt.commands.stages.calls import decide
from skillopt.commands.stages.update import with_completion
from skillopt.machine.core.state import TrainerState
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages import verdicts


def flush_appendix(cmd: tr.FlushAppendix, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield with_completion(state, decide(ctx, verdicts.flush_appendix(cmd, state, ctx.text)))
