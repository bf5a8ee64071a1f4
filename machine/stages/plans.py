"""Stages that plan from the run seed and the recorded state: an epoch's batches, a step's
reflection minibatches, the epoch-end review; and the records that close an epoch and a run."""

from __future__ import annotations

from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions import review
from skillopt.machine.decisions.plans import (
    epoch_seed,
    plan_minibatches,
    reflection_seed,
)
from skillopt.machine.decisions.plans import plan_epoch as epoch_batches
from skillopt.machine.decisions.scoring import aggregate, is_failure
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages.protocol import Decision, decided


def plan_epoch(cmd: tr.PlanEpoch, state: TrainerState) -> Decision:
    assert state.dataset is not None
    t = state.cfg.train
    seed = epoch_seed(t.seed, cmd.epoch)
    steps = epoch_batches(state.dataset.train, seed, t.batch_size, t.accumulation)
    first = (cmd.epoch - 1) * state.dataset.steps_per_epoch + 1
    return decided(ev.EpochPlanned(epoch=cmd.epoch, first_step=first, seed=seed, steps=steps))


def plan_reflection(cmd: tr.PlanReflection, state: TrainerState) -> Decision:
    p = state.progress
    assert p is not None
    scores = state.step_items(cmd.step)
    failures = [i for i, s in scores.items() if is_failure(s.hard)]
    successes = [i for i, s in scores.items() if not is_failure(s.hard)]
    seed = reflection_seed(state.cfg.train.seed, p.epoch, cmd.step)
    g = state.cfg.gradient
    minibatches = [
        ev.Minibatch(id=mb_id, source_type=kind, item_ids=ids)  # type: ignore[arg-type]
        for mb_id, kind, ids in plan_minibatches(
            failures, successes, seed, g.minibatch_size, g.failure_only
        )
    ]
    hard, soft, n = aggregate((s.hard, s.soft) for s in scores.values())
    return decided(
        ev.ReflectionPlanned(
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
    )


def plan_review(cmd: tr.PlanReview, state: TrainerState) -> Decision:
    """The epoch-end comparison's sample: sized by slow_update_samples, drawn from the seed."""
    assert state.dataset is not None
    o = state.cfg.optimizer
    target = min(o.slow_update_samples, len(state.dataset.train))
    seed, sample, scan = review.plan_review(
        state.dataset.train, state.cfg.train.seed, cmd.epoch, target, o.longitudinal_pair_policy
    )
    return decided(
        ev.ReviewPlanned(
            epoch=cmd.epoch,
            prev_hash=state.epoch_end_hashes[cmd.epoch - 1],
            curr_hash=state.current_hash,
            policy=o.longitudinal_pair_policy,
            target=target,
            seed=seed,
            sample=sample,
            scan=scan,
        )
    )


def complete_epoch(cmd: tr.CompleteEpoch, state: TrainerState) -> Decision:
    return decided(
        ev.EpochCompleted(
            epoch=cmd.epoch,
            last_step=state.steps_completed,
            current_hash=state.current_hash,
            best_hash=state.best_hash,
            best_score=state.best_score,
        )
    )


def complete_run(cmd: tr.CompleteRun, state: TrainerState) -> Decision:
    return decided(
        ev.RunCompleted(
            best_hash=state.best_hash,
            best_score=state.best_score,
            best_step=state.best_step,
            final_hash=state.current_hash,
            **state.totals(),
        )
    )
