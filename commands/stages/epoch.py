"""The epoch boundary: the comparison with the previous epoch's last skill (its plan and its
rollouts), the slow update, the meta skill; and the gate of a slow-update or appendix skill.
The decisions are machine/stages' (plans, epoch, verdicts); this is their shell."""

from __future__ import annotations

from skillopt.commands.context import StageContext
from skillopt.commands.stages import HandlerGen
from skillopt.commands.stages.calls import decide
from skillopt.commands.stages.rollouts import roll
from skillopt.commands.stages.update import with_completion
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions import gate as gate_rules
from skillopt.machine.decisions import reuse
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages import epoch, plans, verdicts


def plan_review(cmd: tr.PlanReview, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield decide(ctx, plans.plan_review(cmd, state))


def review_rollout(cmd: tr.ReviewRollout, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """Recorded train rollouts of the same skill and item are reused first (one transaction,
    no call), then the rest is rolled out."""
    reuses = [r for h, i in cmd.pending if (r := reuse.reused(state, "review", 0, h, i))]
    if reuses:
        state = yield list(reuses)
    done = {(r.skill_hash, r.item_id) for r in reuses}
    for skill_hash in dict.fromkeys(h for h, _ in cmd.pending):
        units = [
            (0, ctx.item("train", i))
            for h, i in cmd.pending
            if h == skill_hash and (h, i) not in done
        ]
        if units:
            state = yield from roll(ctx, state, "review", 0, skill_hash, units)


def slow_update(cmd: tr.SlowUpdate, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield decide(ctx, epoch.slow_update(cmd, state, ctx.text))


def meta_skill(cmd: tr.MetaSkill, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield decide(ctx, epoch.meta_skill(cmd, state, ctx.text))


def gate_update(cmd: tr.GateUpdate, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """Evaluate the skill on the selection split (reusing what is scored) and gate it against
    the current skill, as a step's candidate."""
    if cmd.pending:
        units = [(0, ctx.item("selection", i)) for i in cmd.pending]
        until = gate_rules.stopper(state, cmd.skill_hash, cmd.kind)
        state = yield from roll(ctx, state, "selection", 0, cmd.skill_hash, units, until)
    gated = decide(ctx, verdicts.update_gated(cmd, state, ctx.text))
    if cmd.kind == "appendix":
        yield with_completion(state, gated)
    else:
        yield gated
