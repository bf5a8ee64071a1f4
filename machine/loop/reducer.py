"""The reducer: `apply(state, event) -> state`, pure and total over every event type."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from skillopt.machine.config.schema import recorded_config
from skillopt.machine.core import events as ev
from skillopt.machine.core.state import (
    ItemScore,
    SelectionScore,
    StepProgress,
    StepRecord,
    TrainerState,
    eval_key,
    train_key,
    unit_key,
)
from skillopt.machine.core.values import PMap, maker, replace
from skillopt.machine.decisions.health import judge_unusable
from skillopt.machine.decisions.scoring import aggregate, effects

Handler = Callable[[TrainerState, Any], TrainerState]
_HANDLERS: dict[type[ev.Event], Handler] = {}


def on(event_type: type[ev.Event]) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _HANDLERS[event_type] = fn
        return fn

    return register


def apply(state: TrainerState, event: ev.Event) -> TrainerState:
    handler = _HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"reducer has no rule for {event.TYPE} v{event.VERSION}")
    if state.last_failure is None and state.last_stop is None:
        if type(event) is ev.RolloutScored:  # most events of a run: one state copy, not two
            return _rollout_scored(state, event, bump=True)
        state = replace(state, seq=state.seq + 1)
    else:
        changes: dict[str, Any] = {"seq": state.seq + 1, "last_stop": None}  # holds one event
        if not isinstance(event, ev.StageFailed):
            changes["last_failure"] = None  # the failed stage has moved on since
        state = replace(state, **changes)
    return handler(state, event)


def reduce(events: Iterable[ev.Event], state: TrainerState | None = None) -> TrainerState:
    state = state or TrainerState()
    for event in events:
        state = apply(state, event)
    return state


def _with_progress(state: TrainerState, **changes: Any) -> TrainerState:
    assert state.progress is not None, "step event outside a step"
    return replace(state, progress=replace(state.progress, **changes))


def _count(state: TrainerState, stage: str, calls: Iterable[ev.Tokens]) -> TrainerState:
    rows = list(calls)
    state = replace(state, tokens=_counted(state, stage, rows))
    return _written(state, stage, sum(t.written for t in rows))


def _written(state: TrainerState, stage: str, n: int) -> TrainerState:
    """Prompt-cache writes per stage; a stage without any is left out (old runs: none)."""
    if not n:
        return state
    done = state.cache_written
    return replace(state, cache_written={**done, stage: done.get(stage, 0) + n})


def _counted(
    state: TrainerState, stage: str, calls: Iterable[ev.Tokens]
) -> Mapping[str, tuple[int, int, int, int]]:
    n, i, o, c = state.tokens.get(stage, (0, 0, 0, 0))
    for t in calls:
        n, i, o, c = n + 1, i + t.input, o + t.output, c + t.cached
    return {**state.tokens, stage: (n, i, o, c)}


def _unusable(state: TrainerState, stage: str, n: int = 1) -> TrainerState:
    """Optimizer replies that were unusable even after their re-ask, per stage."""
    if n == 0:
        return state
    return replace(state, unusable={**state.unusable, stage: state.unusable.get(stage, 0) + n})


def _calls(call: ev.CallRecord, reask: ev.CallRecord | None) -> list[ev.Tokens]:
    """The tokens of an optimizer call and of its re-ask, if there was one."""
    return [call.tokens] + ([reask.tokens] if reask is not None else [])


def _cache(state: TrainerState, skill_hash: str, e: Any) -> TrainerState:
    score = SelectionScore(e.hard, e.soft, e.n, e.gate_score)
    return replace(state, selection_cache={**state.selection_cache, skill_hash: score})


def _start_step(state: TrainerState, step: int) -> TrainerState:
    """Open the progress record of `step` if its epoch is planned."""
    if state.dataset is None or step > state.dataset.total_steps:
        return replace(state, progress=None)
    epoch = state.epoch_of(step)
    plan = state.plans.get(epoch)
    if plan is None:
        return replace(state, progress=None)
    batches = tuple(tuple(b) for b in plan.steps[step - plan.first_step])
    return replace(
        state,
        progress=StepProgress(
            step=step, epoch=epoch, batches=batches, parent_hash=state.current_hash
        ),
    )


@on(ev.RunCreated)
def _run_created(s: TrainerState, e: ev.RunCreated) -> TrainerState:
    return replace(
        s,
        run_name=e.run_name,
        config=recorded_config(e.config),
        config_data=e.config,
        initial_hash=e.initial_skill_hash,
        current_hash=e.initial_skill_hash,
        warnings=tuple(e.warnings),
        best_hash=e.initial_skill_hash,
        fork_seq=e.forked_from.seq if e.forked_from else None,
        fork_origin=e.forked_from.model_dump() if e.forked_from else None,
    )


@on(ev.SettingsChanged)
def _settings_changed(s: TrainerState, e: ev.SettingsChanged) -> TrainerState:
    config = recorded_config(e.config)
    s = replace(s, config=config, config_data=e.config, unusable_streak=0, judge_unusable_streak=0)
    if s.dataset is not None:  # the number of epochs may have changed
        total = s.dataset.steps_per_epoch * config.train.num_epochs
        s = replace(s, dataset=s.dataset.model_copy(update={"total_steps": total}))
    return s


@on(ev.DatasetLoaded)
def _dataset_loaded(s: TrainerState, e: ev.DatasetLoaded) -> TrainerState:
    return replace(s, dataset=e)


_ITEM_SCORE = maker(ItemScore)
_ROLLOUT_STAGES = {phase: f"rollout:{phase}" for phase in ("train", "selection", "test", "review")}


@on(ev.RolloutScored)
def _rollout_scored(s: TrainerState, e: ev.RolloutScored, bump: bool = False) -> TrainerState:
    """`bump`: also count the event (apply's seq + 1), in the same copy of the state. The
    run's most frequent event: written for speed (benchmarks/replay.py)."""
    seq = s.seq + 1 if bump else s.seq
    phase, item_id, tokens = e.phase, e.item_id, e.tokens
    if phase == "train":
        key, unit = train_key(e.step), unit_key(e.batch, item_id)
    else:
        key, unit = eval_key(phase, e.skill_hash), item_id
    score = _ITEM_SCORE(
        item_id,
        e.hard,
        e.soft,
        e.fail_reason,
        e.task_type,
        e.trajectory_hash,
        e.feedback,
        seq,
        (tokens.input, tokens.output),
    )
    rollouts = s.rollouts if isinstance(s.rollouts, PMap) else PMap(s.rollouts)
    if e.reuse_of is not None:  # a recorded result read again: no call, nothing spent
        reused = {**s.reused, phase: s.reused.get(phase, 0) + 1}
        key_rows = {**rollouts.get(key, {}), unit: score}
        return replace(s, seq=seq, rollouts=rollouts.set(key, key_rows), reused=reused)
    stage = _ROLLOUT_STAGES.get(phase) or f"rollout:{phase}"
    n, i, o, c = s.tokens.get(stage, (0, 0, 0, 0))
    counts = {**s.tokens, stage: (n + 1, i + tokens.input, o + tokens.output, c + tokens.cached)}
    if e.judge_tokens is not None:  # the judge's calls: a role, and a stage, of their own
        j = e.judge_tokens
        n, i, o, c = counts.get(f"judge:{phase}", (0, 0, 0, 0))
        counts[f"judge:{phase}"] = (n + 1, i + j.input, o + j.output, c + j.cached)
    s = replace(
        s,
        seq=seq,
        rollouts=rollouts.set(key, {**rollouts.get(key, {}), unit: score}),
        tokens=counts,
    )
    if tokens.written or (e.judge_tokens is not None and e.judge_tokens.written):
        s = _written(s, stage, tokens.written)
        s = _written(s, f"judge:{phase}", e.judge_tokens.written if e.judge_tokens else 0)
    return s


@on(ev.BaselineEvaluated)
def _baseline(s: TrainerState, e: ev.BaselineEvaluated) -> TrainerState:
    s = _cache(s, e.skill_hash, e)
    return replace(s, baseline=e, current_score=e.gate_score, best_score=e.gate_score)


@on(ev.EpochPlanned)
def _epoch_planned(s: TrainerState, e: ev.EpochPlanned) -> TrainerState:
    s = replace(s, plans={**s.plans, e.epoch: e})
    return _start_step(s, s.steps_completed + 1)


@on(ev.ReflectionPlanned)
def _reflection_planned(s: TrainerState, e: ev.ReflectionPlanned) -> TrainerState:
    return _with_progress(s, reflection=e)


@on(ev.ReflectionProposed)
def _reflection_proposed(s: TrainerState, e: ev.ReflectionProposed) -> TrainerState:
    assert s.progress is not None
    s = _count(s, "reflect", _calls(e.call, e.reask))
    s = _unusable(s, "reflect", 0 if e.ok else 1)
    return _with_progress(s, proposals={**s.progress.proposals, e.minibatch_id: e})


@on(ev.PatchesMerged)
def _merged(s: TrainerState, e: ev.PatchesMerged) -> TrainerState:
    s = _count(
        s, "merge", [t for n in e.nodes if n.call is not None for t in _calls(n.call, n.reask)]
    )
    s = _unusable(s, "merge", sum(1 for n in e.nodes if not n.ok))
    return _with_progress(s, merged=e)


@on(ev.EditsSelected)
def _selected(s: TrainerState, e: ev.EditsSelected) -> TrainerState:
    if e.decision is not None and e.decision.call is not None:
        s = _count(s, "budget", _calls(e.decision.call, e.decision.reask))
        s = _unusable(s, "budget", 0 if e.decision.ok else 1)
    if e.ranking is not None:
        s = _count(s, "rank", _calls(e.ranking.call, e.ranking.reask))
        s = _unusable(s, "rank", 0 if e.ranking.ok else 1)
    return replace(_with_progress(s, selected=e), budget_t=e.schedule_t)


@on(ev.CandidateBuilt)
def _built(s: TrainerState, e: ev.CandidateBuilt) -> TrainerState:
    if e.rewrite is not None:
        s = _count(s, "rewrite", _calls(e.rewrite.call, e.rewrite.reask))
        s = _unusable(s, "rewrite", 0 if e.rewrite.ok else 1)
    return _with_progress(s, candidate=e)


@on(ev.StepSkipped)
def _skipped(s: TrainerState, e: ev.StepSkipped) -> TrainerState:
    return _with_progress(s, skipped=e)


@on(ev.CandidateEvaluated)
def _evaluated(s: TrainerState, e: ev.CandidateEvaluated) -> TrainerState:
    if e.early_stop is None:  # a stopped rollout is no measured score: never a cache hit
        s = _cache(s, e.skill_hash, e)
    return _with_progress(s, evaluated=e)


@on(ev.GateDecided)
def _gate(s: TrainerState, e: ev.GateDecided) -> TrainerState:
    return _with_progress(s, decided=e)


def _record(s: TrainerState, e: ev.StepCompleted) -> StepRecord:
    p = s.progress
    assert p is not None
    scores = list(s.step_items(p.step).values())
    r_hard, r_soft, r_n = aggregate((x.hard, x.soft) for x in scores)
    ev_ = p.evaluated
    cand = p.candidate
    return StepRecord(
        step=e.step,
        epoch=e.epoch,
        action=e.action,
        rollout_hard=r_hard if r_n else None,
        rollout_soft=r_soft if r_n else None,
        rollout_n=r_n,
        candidate_hash=cand.candidate_hash if cand else None,
        selection_hard=ev_.hard if ev_ else None,
        selection_soft=ev_.soft if ev_ else None,
        candidate_gate_score=ev_.gate_score if ev_ else None,
        cache_hit=ev_.cache_hit if ev_ else None,
        current_score=e.current_score,
        best_score=e.best_score,
        n_edits_merged=len(p.merged.edits) if p.merged else 0,
        n_edits_selected=len(p.selected.edits) if p.selected else 0,
        edit_budget=p.selected.budget if p.selected else None,
        edits_applied=cand.n_applied if cand else 0,
        edits_skipped=cand.n_skipped if cand else 0,
        rule=p.decided.rule if p.decided else (p.skipped.reason if p.skipped else ""),
        edits=_edit_rows(p),
        current_hash=e.current_hash,
        best_hash=e.best_hash,
        stopped_after=ev_.early_stop.evaluated if ev_ and ev_.early_stop else None,
    )


def _edit_rows(p: StepProgress) -> tuple[dict[str, str], ...]:
    if p.selected is None:
        return ()
    statuses = [row.status for row in p.candidate.report] if p.candidate else []
    return tuple(
        {
            "op": edit.op,
            "target": edit.target,
            "content": edit.content,
            "source_type": edit.source_type,
            "status": statuses[i] if i < len(statuses) else "not_applied",
        }
        for i, edit in enumerate(p.selected.edits)
    )


@on(ev.StepCompleted)
def _step_completed(s: TrainerState, e: ev.StepCompleted) -> TrainerState:
    changed = e.current_hash != s.current_hash
    best_changed = e.best_hash != s.best_hash or e.best_step != s.best_step
    assert s.progress is not None
    s = replace(
        s,
        records=(*s.records, _record(s, e)),
        details={**s.details, e.step: s.progress},
        steps_completed=e.step,
        current_hash=e.current_hash,
        current_score=e.current_score,
        current_step=e.step if changed else s.current_step,
        current_origin=f"step {e.step}" if changed else s.current_origin,
        best_hash=e.best_hash,
        best_score=e.best_score,
        best_step=e.best_step,
        best_origin=f"step {e.best_step}" if best_changed else s.best_origin,
        # steps in a row whose reflections (or judge replies) were all unusable: a run stops
        unusable_streak=s.unusable_streak + 1 if e.action == "skip_reflection_unusable" else 0,
        judge_unusable_streak=s.judge_unusable_streak + 1 if judge_unusable(s, e.step) else 0,
    )
    return _start_step(s, e.step + 1)


@on(ev.EpochCompleted)
def _epoch_completed(s: TrainerState, e: ev.EpochCompleted) -> TrainerState:
    ends = {**s.epoch_end_hashes, e.epoch: e.current_hash}
    return replace(s, epochs_completed=e.epoch, epoch_end_hashes=ends)


@on(ev.AppendixFlushed)
def _appendix(s: TrainerState, e: ev.AppendixFlushed) -> TrainerState:
    if e.consolidation is not None:
        s = _count(s, "consolidate", _calls(e.consolidation.call, e.consolidation.reask))
        s = _unusable(s, "consolidate", 0 if e.consolidation.ok else 1)
    return _with_progress(s, appendix=e)


@on(ev.ReviewPlanned)
def _review(s: TrainerState, e: ev.ReviewPlanned) -> TrainerState:
    return replace(s, reviews={**s.reviews, e.epoch: e})


@on(ev.SlowUpdateDone)
def _slow_update(s: TrainerState, e: ev.SlowUpdateDone) -> TrainerState:
    if e.call is not None:
        s = _count(s, "slow_update", _calls(e.call, e.reask))
    s = _unusable(s, "slow_update", 1 if e.action == "failed" else 0)
    s = replace(s, slow_updates={**s.slow_updates, e.epoch: e})
    if e.action in ("placeholder", "force_accept") and e.skill_hash != s.current_hash:
        # Written into the current skill only; its score is carried, never cached as measured.
        s = replace(s, current_hash=e.skill_hash, current_origin=f"slow update (epoch {e.epoch})")
    return s


@on(ev.MetaSkillDone)
def _meta_skill(s: TrainerState, e: ev.MetaSkillDone) -> TrainerState:
    s = _count(s, "meta_skill", _calls(e.call, e.reask))
    s = _unusable(s, "meta_skill", 1 if e.action == "failed" else 0)
    return replace(s, meta_skills={**s.meta_skills, e.epoch: e})


@on(ev.UpdateGated)
def _update_gated(s: TrainerState, e: ev.UpdateGated) -> TrainerState:
    if e.early_stop is None:
        s = _cache(s, e.skill_hash, e)
    if e.kind == "appendix":
        return _with_progress(s, appendix_gate=e)
    s = replace(s, slow_gates={**s.slow_gates, e.epoch: e})
    origin = f"slow update (epoch {e.epoch})"
    if e.action != "reject":
        s = replace(s, current_hash=e.skill_hash, current_score=e.gate_score, current_origin=origin)
    if effects(e.action, e.gate_score, s.best_score)[1]:
        s = replace(
            s, best_hash=e.skill_hash, best_score=e.gate_score, best_step=e.step, best_origin=origin
        )
    return s


@on(ev.FinalEvaluated)
def _final(s: TrainerState, e: ev.FinalEvaluated) -> TrainerState:
    if e.split == "test":
        return replace(s, final_tests={**s.final_tests, e.role: e})
    s = replace(_cache(s, e.skill_hash, e), final_selection=e)
    if e.promoted:
        s = replace(
            s,
            best_hash=e.skill_hash,
            best_score=e.gate_score,
            best_step=s.current_step,
            best_origin=f"{s.current_origin} (promoted at the end)",
        )
    return s


@on(ev.RunCompleted)
def _run_completed(s: TrainerState, e: ev.RunCompleted) -> TrainerState:
    return replace(s, completed=e)


@on(ev.BudgetSet)
def _budget_set(s: TrainerState, e: ev.BudgetSet) -> TrainerState:
    return replace(s, budget_set=True, budget_usd=e.max_usd, budget_tokens=e.max_tokens)


@on(ev.BudgetExhausted)
def _budget_exhausted(s: TrainerState, e: ev.BudgetExhausted) -> TrainerState:
    return replace(s, last_stop=e)


@on(ev.StageFailed)
def _stage_failed(s: TrainerState, e: ev.StageFailed) -> TrainerState:
    return replace(s, last_failure=e)
