"""Stages that roll a skill out on items: baseline, train rollouts, candidate evaluation, final."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

from skillopt.adapters.protocol import Item, RolloutResult
from skillopt.commands.context import StageContext, env_roles
from skillopt.commands.executors import Port
from skillopt.commands.stages import Batch, HandlerGen
from skillopt.commands.stages.calls import decide
from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions import gate as gate_rules
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages import evaluations

# A finished unit: batch, item, result, call ids, prompt-cache writes (target's, judge's).
Done = tuple[int, Item, RolloutResult, list[str], tuple[int, int]]


@dataclass(frozen=True)
class RolloutJob:
    """What the units of one roll share: the phase, the step, the skill (by hash and text)."""

    phase: str
    step: int
    skill_hash: str
    skill: str
    judged: bool  # the environment's rollouts also take the judge model


def rollout_unit(job: RolloutJob, unit: tuple[int, Item], port: Port) -> Done:
    """One rollout, wherever the executor runs it: (batch, item, result, the calls it made,
    the prompt-cache writes of those calls)."""
    batch, item = unit
    phase, step = job.phase, job.step
    name = f"{batch}/{item.id}" if phase == "train" else f"{item.id}@{job.skill_hash[:12]}"
    model = port.model_for("target", step, f"rollout:{phase}", name)
    if not job.judged:
        result = port.env.rollout(item, job.skill, model)
        return batch, item, result, model.call_ids, (model.cache_written, 0)
    judge = port.model_for("judge", step, f"judge:{phase}", name)
    result = port.env.rollout(item, job.skill, model, judge=judge)  # type: ignore[call-arg]
    written = (model.cache_written, judge.cache_written)
    return batch, item, result, model.call_ids + judge.call_ids, written


def roll(
    ctx: StageContext,
    state: TrainerState,
    phase: str,
    step: int,
    skill_hash: str,
    units: Sequence[tuple[int, Item]],
    until: gate_rules.Stopper | None = None,
) -> Generator[Batch, TrainerState, TrainerState]:
    """Roll out `units` ((batch, item)) with the skill; one rollout.scored per unit, in order.
    Returns the state folded with them.

    `until` (early reject): the rollout stops right after the first recorded unit whose folded
    state settles the stop, so the events depend neither on the worker count nor on where a
    resumed run restarted. Units go out in chunks of the stop's horizon (the fewest units that
    could settle it), all concurrently: a stop can only fall on a chunk's last unit, so no unit
    is rolled past it. Were one ever (a horizon is a bound), its result would be dropped."""
    job = RolloutJob(phase, step, skill_hash, ctx.text(skill_hash), "judge" in env_roles(ctx.env))
    workers = ctx.config.train.workers
    label = f"{phase} rollout" + (f" (step {step})" if step else "")
    with ctx.progress.task(label, len(units)) as bar:
        start = 0
        while start < len(units):
            size = len(units) - start
            if until is not None:
                size = max(1, min(size, until.horizon(state) or size))
            chunk = ctx.ordered(rollout_unit, job, units[start : start + size], workers)
            try:
                for done in chunk:
                    state = yield _scored(ctx, phase, step, skill_hash, done)
                    start += 1
                    bar.advance()
                    if until is not None and until.settled(state):
                        return state
            finally:
                chunk.close()  # a stop drops the chunk's rest (in-flight calls finish first)
    return state


def _scored(
    ctx: StageContext,
    phase: str,
    step: int,
    skill_hash: str,
    done: Done,
) -> ev.RolloutScored:
    batch, item, result, call_ids, written = done
    (trajectory_hash,) = ctx.store(result.trajectory)
    return ev.RolloutScored(
        phase=phase,  # type: ignore[arg-type]
        step=step,
        batch=batch,
        skill_hash=skill_hash,
        item_id=item.id,
        hard=float(result.hard),
        soft=float(result.soft),
        fail_reason=result.fail_reason,
        task_type=result.task_type,
        trajectory_hash=trajectory_hash,
        feedback=dict(result.feedback),
        tokens=ev.Tokens(
            input=result.input_tokens,
            output=result.output_tokens,
            cached=result.cached_tokens,
            written=written[0],
        ),
        judge_tokens=None
        if not any(result.judge_tokens)
        else ev.Tokens(
            input=result.judge_tokens[0],
            output=result.judge_tokens[1],
            cached=result.judge_tokens[2],
            written=written[1],
        ),
        call_ids=call_ids,
    )


def _eval_items(ctx: StageContext, split: str, ids: Sequence[str]) -> list[tuple[int, Item]]:
    return [(0, ctx.item(split, i)) for i in ids]


def evaluate_baseline(
    cmd: tr.EvaluateBaseline, state: TrainerState, ctx: StageContext
) -> HandlerGen:
    if cmd.pending:
        units = _eval_items(ctx, "selection", cmd.pending)
        state = yield from roll(ctx, state, "selection", 0, cmd.skill_hash, units)
    yield decide(ctx, evaluations.baseline(cmd, state, ctx.text))


def rollout_train(cmd: tr.RolloutTrain, state: TrainerState, ctx: StageContext) -> HandlerGen:
    units = [(batch, ctx.item("train", item_id)) for batch, item_id in cmd.pending]
    assert state.progress is not None
    yield from roll(ctx, state, "train", cmd.step, state.progress.parent_hash, units)


def evaluate_candidate(
    cmd: tr.EvaluateCandidate, state: TrainerState, ctx: StageContext
) -> HandlerGen:
    if not cmd.cache_hit and cmd.pending:
        units = _eval_items(ctx, "selection", cmd.pending)
        until = gate_rules.stopper(state, cmd.skill_hash, "step")
        state = yield from roll(ctx, state, "selection", cmd.step, cmd.skill_hash, units, until)
    yield decide(ctx, evaluations.candidate(cmd, state, ctx.text))


def evaluate_reference(
    cmd: tr.EvaluateReference, state: TrainerState, ctx: StageContext
) -> HandlerGen:
    """gate_rule paired: the current skill's missing selection scores, before its gate."""
    units = _eval_items(ctx, "selection", cmd.pending)
    yield from roll(ctx, state, "selection", cmd.step, cmd.skill_hash, units)


def final_selection(cmd: tr.FinalSelection, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """The final skill on the selection split (a cached score is reused)."""
    if cmd.skill_hash not in state.selection_cache and cmd.pending:
        units = _eval_items(ctx, "selection", cmd.pending)
        state = yield from roll(ctx, state, "selection", 0, cmd.skill_hash, units)
    yield decide(ctx, evaluations.final_selection(cmd, state, ctx.text))


def final_test(cmd: tr.FinalTest, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """One of the initial, best and final skills on the test split (shared rollouts are reused)."""
    if cmd.pending:
        units = _eval_items(ctx, "test", cmd.pending)
        state = yield from roll(ctx, state, "test", 0, cmd.skill_hash, units)
    yield decide(ctx, evaluations.final_test(cmd, state))
