"""The epoch boundary: the comparison with the previous epoch's last skill, the slow update
(and its gate), the meta skill; and the gate of a slow-update or appendix skill."""

from __future__ import annotations

from commands.context import StageContext
from commands.stages import HandlerGen
from commands.stages.calls import send
from commands.stages.rollouts import gate_of, roll
from commands.stages.update import with_completion
from machine import asks, gate_rules, review
from machine import events as ev
from machine import transitions as tr
from machine.skilldoc import with_slow_update
from machine.state import TrainerState


def plan_review(cmd: tr.PlanReview, state: TrainerState, ctx: StageContext) -> HandlerGen:
    assert state.dataset is not None
    o = state.cfg.optimizer
    target = min(o.slow_update_samples, len(state.dataset.train))
    seed, sample, scan = review.plan_review(
        state.dataset.train, state.cfg.train.seed, cmd.epoch, target, o.longitudinal_pair_policy
    )
    yield ev.ReviewPlanned(
        epoch=cmd.epoch,
        prev_hash=state.epoch_end_hashes[cmd.epoch - 1],
        curr_hash=state.current_hash,
        policy=o.longitudinal_pair_policy,
        target=target,
        seed=seed,
        sample=sample,
        scan=scan,
    )


def review_rollout(cmd: tr.ReviewRollout, state: TrainerState, ctx: StageContext) -> HandlerGen:
    for skill_hash in dict.fromkeys(h for h, _ in cmd.pending):
        units = [(0, ctx.item("train", i)) for h, i in cmd.pending if h == skill_hash]
        state = yield from roll(ctx, state, "review", 0, skill_hash, units)


def slow_update(cmd: tr.SlowUpdate, state: TrainerState, ctx: StageContext) -> HandlerGen:
    parent = state.current_hash
    base = {"epoch": cmd.epoch, "parent_hash": parent}
    if cmd.epoch == 1:  # nothing to compare yet: an empty block the later epochs fill
        (placeholder,) = ctx.store(with_slow_update(ctx.text(parent), ""))
        yield ev.SlowUpdateDone(action="placeholder", skill_hash=placeholder, **base)
        return
    plan = state.reviews[cmd.epoch]
    pairs = review.pairs(state, plan)
    answer = send(
        ctx, asks.slow_update(state, plan, pairs, ctx.text), step=0, unit=f"epoch{cmd.epoch}"
    )
    calls = {"pairs": pairs, "call": answer.call, "reask": answer.reask}
    if answer.value is None:
        yield ev.SlowUpdateDone(
            action="failed", skill_hash=parent, error=answer.error, **base, **calls
        )
        return
    reasoning, content = answer.value
    if not content:
        yield ev.SlowUpdateDone(
            action="no_content", skill_hash=parent, reasoning=reasoning, **base, **calls
        )
        return
    content_hash, skill_hash = ctx.store(content, with_slow_update(ctx.text(parent), content))
    gated = state.cfg.optimizer.slow_update_gate_with_selection and skill_hash != parent
    yield ev.SlowUpdateDone(
        action="gate" if gated else "force_accept",
        skill_hash=skill_hash,
        content_hash=content_hash,
        reasoning=reasoning,
        **base,
        **calls,
    )


def meta_skill(cmd: tr.MetaSkill, state: TrainerState, ctx: StageContext) -> HandlerGen:
    plan = state.reviews[cmd.epoch]
    pairs = review.pairs(state, plan)
    answer = send(
        ctx, asks.meta_skill(state, plan, pairs, ctx.text), step=0, unit=f"epoch{cmd.epoch}"
    )
    base = {"epoch": cmd.epoch, "pairs": pairs, "call": answer.call, "reask": answer.reask}
    if answer.value is None:
        yield ev.MetaSkillDone(action="failed", error=answer.error, **base)
        return
    reasoning, content = answer.value
    if not content:
        yield ev.MetaSkillDone(action="no_content", reasoning=reasoning, **base)
        return
    (content_hash,) = ctx.store(content)
    yield ev.MetaSkillDone(action="write", content_hash=content_hash, reasoning=reasoning, **base)


def gate_update(cmd: tr.GateUpdate, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """Evaluate the skill on the selection split (reusing what is scored) and gate it against
    the current skill, as a step's candidate."""
    assert state.dataset is not None
    if cmd.pending:
        units = [(0, ctx.item("selection", i)) for i in cmd.pending]
        until = gate_rules.stopper(state, cmd.skill_hash, cmd.kind)
        state = yield from roll(ctx, state, "selection", 0, cmd.skill_hash, units, until)
    stop = None
    if cmd.cache_hit:
        cached = state.selection_cache[cmd.skill_hash]
        hard, soft, n = cached.hard, cached.soft, cached.n
    else:
        stop = gate_rules.early_stop(state, cmd.skill_hash, cmd.kind)
        hard, soft, n = gate_rules.evaluated_scores(state, cmd.skill_hash, stop)
    score = gate_of(state, hard, soft)
    base = gate_rules.baseline(state, cmd.kind)
    current, best = base.current_score, base.best_score
    verdict, paired = gate_rules.verdict(state, cmd.skill_hash, score, stop, base)
    gated = ev.UpdateGated(
        kind=cmd.kind,  # type: ignore[arg-type]
        step=cmd.step,
        epoch=cmd.epoch,
        skill_hash=cmd.skill_hash,
        n=n,
        hard=hard,
        soft=soft,
        gate_score=score,
        cache_hit=cmd.cache_hit,
        action=verdict.action,  # type: ignore[arg-type]
        current_score=current,
        best_score=best,
        rule=verdict.rule,
        early_stop=stop,
        paired=paired,
    )
    if cmd.kind == "appendix":
        yield with_completion(state, gated)
    else:
        yield gated
