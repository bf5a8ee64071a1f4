"""The stage graph: `next_command(state)` says what the run does next, and nothing else does.

Read top to bottom, this is the whole training loop: dataset, baseline, per epoch a plan and
its steps (rollout, reflect, merge, select, update, evaluate, gate), the epoch boundary, the
final evaluation and completion. Skips are edges here, not special cases in handlers.
"""

from __future__ import annotations

from dataclasses import dataclass

from skillopt.machine.core import events as ev
from skillopt.machine.core.state import StepProgress, TrainerState, eval_key, train_key, unit_key
from skillopt.machine.decisions import gate as gate_rules
from skillopt.machine.decisions.edit_budget import edit_budget
from skillopt.machine.decisions.review import pending as review_pending

FINAL_TEST_ROLES = ("initial", "best", "final")


@dataclass(frozen=True)
class Command:
    @property
    def stage(self) -> str:
        return STAGES[type(self)].name


@dataclass(frozen=True)
class LoadDataset(Command):
    pass


@dataclass(frozen=True)
class EvaluateBaseline(Command):
    skill_hash: str
    pending: tuple[str, ...]


@dataclass(frozen=True)
class PlanEpoch(Command):
    epoch: int


@dataclass(frozen=True)
class RolloutTrain(Command):
    step: int
    pending: tuple[tuple[int, str], ...]  # (accumulation batch, item id)


@dataclass(frozen=True)
class PlanReflection(Command):
    step: int


@dataclass(frozen=True)
class Reflect(Command):
    step: int
    pending: tuple[str, ...]  # minibatch ids


@dataclass(frozen=True)
class SkipStep(Command):
    step: int
    reason: str


@dataclass(frozen=True)
class Merge(Command):
    step: int


@dataclass(frozen=True)
class Select(Command):
    step: int


@dataclass(frozen=True)
class Update(Command):
    step: int


@dataclass(frozen=True)
class EvaluateCandidate(Command):
    step: int
    skill_hash: str
    pending: tuple[str, ...]  # in evaluation order; () once an early reject is settled
    cache_hit: bool


@dataclass(frozen=True)
class EvaluateReference(Command):
    """gate_rule paired: the current skill's selection scores a gate compares per item, rolled
    out first when its score was carried (a slow-update placeholder, an ungated appendix)."""

    kind: str  # the gate that needs them: step, slow_update or appendix
    step: int
    skill_hash: str
    pending: tuple[str, ...]


@dataclass(frozen=True)
class Gate(Command):
    step: int


@dataclass(frozen=True)
class CompleteStep(Command):
    step: int


@dataclass(frozen=True)
class FlushAppendix(Command):
    step: int


@dataclass(frozen=True)
class GateUpdate(Command):
    """Evaluate (pending selection items) and gate a slow-update or appendix skill."""

    kind: str
    step: int
    epoch: int
    skill_hash: str
    pending: tuple[str, ...]
    cache_hit: bool


@dataclass(frozen=True)
class PlanReview(Command):
    epoch: int


@dataclass(frozen=True)
class ReviewRollout(Command):
    epoch: int
    pending: tuple[tuple[str, str], ...]  # (skill hash, train item id)


@dataclass(frozen=True)
class SlowUpdate(Command):
    epoch: int


@dataclass(frozen=True)
class MetaSkill(Command):
    epoch: int


@dataclass(frozen=True)
class CompleteEpoch(Command):
    epoch: int


@dataclass(frozen=True)
class FinalSelection(Command):
    skill_hash: str
    pending: tuple[str, ...]
    reuse: bool


@dataclass(frozen=True)
class FinalTest(Command):
    role: str
    skill_hash: str
    pending: tuple[str, ...]
    reuse: bool  # an earlier role is the same skill: its test scores are this role's


@dataclass(frozen=True)
class CompleteRun(Command):
    pass


@dataclass(frozen=True)
class Stage:
    """A command's stage: its name (in the call journal, `stage.failed` and `status`) and the
    event types its handler may emit. The one place that says so: verify's stage-graph check
    and tests/test_registries.py read it."""

    name: str
    emits: tuple[type[ev.Event], ...]


_EVAL = (ev.RolloutScored,)
STAGES: dict[type[Command], Stage] = {
    LoadDataset: Stage("dataset", (ev.DatasetLoaded,)),
    EvaluateBaseline: Stage("baseline", (*_EVAL, ev.BaselineEvaluated)),
    PlanEpoch: Stage("epoch_plan", (ev.EpochPlanned,)),
    RolloutTrain: Stage("rollout", _EVAL),
    PlanReflection: Stage("reflect_plan", (ev.ReflectionPlanned,)),
    Reflect: Stage("reflect", (ev.ReflectionProposed,)),
    SkipStep: Stage("skip", (ev.StepSkipped,)),
    Merge: Stage("aggregate", (ev.PatchesMerged,)),
    Select: Stage("select", (ev.EditsSelected,)),
    Update: Stage("update", (ev.CandidateBuilt,)),
    EvaluateCandidate: Stage("evaluate", (*_EVAL, ev.CandidateEvaluated)),
    EvaluateReference: Stage("reference", _EVAL),
    Gate: Stage("gate", (ev.GateDecided,)),
    CompleteStep: Stage("step_end", (ev.StepCompleted,)),
    FlushAppendix: Stage("appendix", (ev.AppendixFlushed, ev.StepCompleted)),
    GateUpdate: Stage("gate_update", (*_EVAL, ev.UpdateGated)),
    PlanReview: Stage("review_plan", (ev.ReviewPlanned,)),
    ReviewRollout: Stage("review", _EVAL),
    SlowUpdate: Stage("slow_update", (ev.SlowUpdateDone,)),
    MetaSkill: Stage("meta_skill", (ev.MetaSkillDone,)),
    CompleteEpoch: Stage("epoch_end", (ev.EpochCompleted,)),
    FinalSelection: Stage("final_selection", (*_EVAL, ev.FinalEvaluated)),
    FinalTest: Stage("final_test", (*_EVAL, ev.FinalEvaluated)),
    CompleteRun: Stage("complete", (ev.RunCompleted,)),
}


def _pending(state: TrainerState, phase: str, skill_hash: str, items: list[str]) -> tuple[str, ...]:
    done = state.scored(eval_key(phase, skill_hash))
    return tuple(i for i in items if i not in done)


def next_command(state: TrainerState) -> Command | None:
    if state.completed is not None:
        return None
    if state.dataset is None:
        return LoadDataset()
    data = state.dataset
    if state.baseline is None:
        pending = _pending(state, "selection", state.initial_hash, data.selection)
        return EvaluateBaseline(state.initial_hash, pending)
    if state.steps_completed < data.total_steps:
        step = state.steps_completed + 1
        epoch = state.epoch_of(step)
        if state.epochs_completed < epoch - 1:
            return _epoch_end(state, epoch - 1)
        if epoch not in state.plans or state.progress is None:
            return PlanEpoch(epoch)
        return _step_command(state, state.progress)
    if state.epochs_completed < state.cfg.train.num_epochs:
        return _epoch_end(state, state.cfg.train.num_epochs)
    return _final_command(state)


def _step_command(state: TrainerState, p: StepProgress) -> Command:
    if p.decided is not None or p.skipped is not None:
        return _step_end(state, p)
    o = state.cfg.optimizer
    if p.selected is None and state.cfg.budget_control == "fixed" and next_budget(state) == 0:
        return SkipStep(p.step, "zero_budget")  # known before any rollout: spend nothing
    scored = state.scored(train_key(p.step))
    pending = tuple(
        (b, item)
        for b, batch in enumerate(p.batches)
        for item in batch
        if unit_key(b, item) not in scored
    )
    if pending:
        return RolloutTrain(p.step, pending)
    if p.reflection is None:
        return PlanReflection(p.step)
    waiting = tuple(m.id for m in p.reflection.minibatches if m.id not in p.proposals)
    if waiting:
        return Reflect(p.step, waiting)
    if not any(proposed(prop) for prop in p.proposals.values()):
        asked = list(p.proposals.values())  # none: nothing failed (failure_only), no call
        unusable = o.max_unusable_steps is not None and bool(asked)
        unusable = unusable and not any(prop.ok for prop in asked)
        return SkipStep(p.step, "reflection_unusable" if unusable else "no_patches")
    if p.merged is None:
        return Merge(p.step)
    if not proposed(p.merged):
        return SkipStep(p.step, "no_patches")
    full = o.skill_update_mode == "full_rewrite_minibatch"
    if p.selected is None and not full:
        return Select(p.step)
    if p.candidate is None:
        return Update(p.step)
    if p.candidate.candidate_hash == p.candidate.parent_hash:
        failed = p.candidate.rewrite is not None and not p.candidate.rewrite.ok
        return SkipStep(p.step, "no_rewrite" if failed else "nothing_applied")
    if p.evaluated is None:
        reference = _reference(state, "step", p.step)
        if reference is not None:
            return reference
        cand = p.candidate.candidate_hash
        if cand in state.selection_cache:
            return EvaluateCandidate(p.step, cand, (), cache_hit=True)
        return EvaluateCandidate(p.step, cand, gate_rules.pending(state, cand, "step"), False)
    return Gate(p.step)


def proposed(x: object) -> bool:
    """Whether a reflection or merge result carries anything to apply, whatever the mode."""
    return bool(
        getattr(x, "edits", None)
        or getattr(x, "suggestions", None)
        or getattr(x, "skill_candidates", None)
    )


def appendix_notes_due(state: TrainerState, p: StepProgress) -> list[str]:
    """The step's execution-lapse notes to flush (skill-aware reflection), in minibatch order."""
    o = state.cfg.optimizer
    if not o.use_skill_aware_reflection or p.reflection is None:
        return []
    notes: list[str] = []
    for mb in p.reflection.minibatches:
        prop = p.proposals.get(mb.id)
        if prop is None or (
            o.skill_aware_appendix_source == "failure_only" and prop.source_type != "failure"
        ):
            continue
        notes.extend(prop.appendix_notes)
    return notes


def _reference(state: TrainerState, kind: str, step: int) -> EvaluateReference | None:
    skill, pending = gate_rules.reference_pending(state, kind)
    return EvaluateReference(kind, step, skill, pending) if pending else None


def _gate_update(state: TrainerState, kind: str, step: int, epoch: int, skill: str) -> Command:
    reference = _reference(state, kind, step)
    if reference is not None:
        return reference
    if skill in state.selection_cache:
        return GateUpdate(kind, step, epoch, skill, (), cache_hit=True)
    pending = gate_rules.pending(state, skill, kind)
    return GateUpdate(kind, step, epoch, skill, pending, cache_hit=False)


def _step_end(state: TrainerState, p: StepProgress) -> Command:
    """After the verdict (or skip): the appendix flush, its gate, then the step's completion."""
    if p.appendix is None and appendix_notes_due(state, p):
        return FlushAppendix(p.step)
    a = p.appendix
    if a is not None and a.gated and a.skill_hash != a.parent_hash and p.appendix_gate is None:
        return _gate_update(state, "appendix", p.step, p.epoch, a.skill_hash)
    return CompleteStep(p.step)


def _epoch_end(state: TrainerState, epoch: int) -> Command:
    """The epoch boundary: compare with the previous epoch, slow update (and its gate), meta
    skill, then epoch.completed."""
    o = state.cfg.optimizer
    if epoch >= 2 and (o.use_slow_update or o.use_meta_skill):
        plan = state.reviews.get(epoch)
        if plan is None:
            return PlanReview(epoch)
        waiting = review_pending(state, plan)
        if waiting:
            return ReviewRollout(epoch, waiting)
    if o.use_slow_update:
        done = state.slow_updates.get(epoch)
        if done is None:
            return SlowUpdate(epoch)
        if done.action == "gate" and epoch not in state.slow_gates:
            last = epoch * state.dataset.steps_per_epoch  # type: ignore[union-attr]
            return _gate_update(state, "slow_update", last, epoch, done.skill_hash)
    if o.use_meta_skill and epoch >= 2 and epoch not in state.meta_skills:
        return MetaSkill(epoch)
    return CompleteEpoch(epoch)


def next_budget(state: TrainerState) -> int:
    """The budget the next select would get from the schedule."""
    o = state.cfg.optimizer
    return edit_budget(
        o.lr_scheduler,
        o.learning_rate,
        o.min_learning_rate,
        state.budget_t + 1,
        state.total_steps,
        state.cfg.parity,
    )


def role_hash(state: TrainerState, role: str) -> str:
    return {"initial": state.initial_hash, "best": state.best_hash, "final": state.current_hash}[
        role
    ]


def _final_command(state: TrainerState) -> Command:
    data = state.dataset
    assert data is not None
    if state.final_selection is None:
        final = state.current_hash
        reuse = final == state.best_hash or final in state.selection_cache
        pending = () if reuse else _pending(state, "selection", final, data.selection)
        return FinalSelection(final, pending, reuse)
    if state.cfg.evaluation.eval_test:
        for role in FINAL_TEST_ROLES:
            if role not in state.final_tests:
                skill = role_hash(state, role)
                reuse = any(role_hash(state, done) == skill for done in state.final_tests)
                return FinalTest(role, skill, _pending(state, "test", skill, data.test), reuse)
    return CompleteRun()
