"""Reflection: cut the step's rollouts into minibatches, one optimizer call per minibatch."""

from __future__ import annotations

from commands.context import StageContext
from commands.stages import HandlerGen
from commands.stages.calls import send
from commands.stages.concurrency import ordered_map
from machine import asks
from machine import events as ev
from machine import transitions as tr
from machine.edits import SkillCandidate
from machine.plans import plan_minibatches, reflection_seed
from machine.replies import CandidateText, candidate_of
from machine.scoring import aggregate, is_failure
from machine.state import TrainerState


def plan_reflection(cmd: tr.PlanReflection, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None
    cfg = state.cfg
    scores = state.step_items(cmd.step)
    failures = [i for i, s in scores.items() if is_failure(s.hard)]
    successes = [i for i, s in scores.items() if not is_failure(s.hard)]
    seed = reflection_seed(cfg.train.seed, p.epoch, cmd.step)
    g = cfg.gradient
    minibatches = [
        ev.Minibatch(id=mb_id, source_type=kind, item_ids=ids)  # type: ignore[arg-type]
        for mb_id, kind, ids in plan_minibatches(
            failures, successes, seed, g.minibatch_size, g.failure_only
        )
    ]
    hard, soft, n = aggregate((s.hard, s.soft) for s in scores.values())
    yield ev.ReflectionPlanned(
        step=cmd.step,
        epoch=p.epoch,
        skill_hash=p.parent_hash,
        rollout_n=n,
        rollout_hard=hard,
        rollout_soft=soft,
        n_failures=len(failures),
        n_successes=len(successes),
        seed=seed,
        minibatches=minibatches,
    )


def reflect(cmd: tr.Reflect, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None and p.reflection is not None
    scores = state.step_items(cmd.step)
    by_id = {m.id: m for m in p.reflection.minibatches}
    todo = [by_id[m] for m in cmd.pending]
    ctx.texts([scores[i].trajectory_hash for m in todo for i in m.item_ids])

    def one(mb: ev.Minibatch) -> ev.ReflectionProposed:
        answer = send(ctx, asks.reflection(state, mb, ctx.text), step=cmd.step, unit=mb.id)
        base = {
            "step": cmd.step,
            "minibatch_id": mb.id,
            "source_type": mb.source_type,
            "item_ids": mb.item_ids,
            "call": answer.call,
            "reask": answer.reask,
        }
        parsed = answer.value
        if parsed is None:
            return ev.ReflectionProposed(ok=False, error=answer.error, **base)
        return ev.ReflectionProposed(
            ok=True,
            reasoning=parsed.reasoning,
            edits=parsed.edits,
            truncated=parsed.truncated,
            failure_summary=parsed.failure_summary,
            success_patterns=parsed.success_patterns,
            suggestions=parsed.suggestions,
            skill_candidates=store_candidates(ctx, parsed.candidates),
            appendix_notes=parsed.appendix_notes,
            **base,
        )

    with ctx.progress.task(f"reflect (step {cmd.step})", len(todo)) as bar:
        for proposal in ordered_map(one, todo, state.cfg.gradient.workers):
            yield proposal
            bar.advance()


def store_candidates(ctx: StageContext, found: list[CandidateText]) -> list[SkillCandidate]:
    """Whole candidate skills go to blobs; events carry their hashes."""
    return [candidate_of(c, ctx.store(c.new_skill)[0]) for c in found]
