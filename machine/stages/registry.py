"""Which pure stage decides each recorded event, and which events are observed instead.

`replay --verify` re-derives every event in DERIVED by running its stage on the state before
it (with the recorded replies for the optimizer's calls) and comparing. OBSERVED events record
what the outside world or the user said (item scores, the dataset, settings, failures): they
are checked for consistency, never derived. A trainer event type in neither set is a defect,
and tests/test_registries.py fails on it; verify refuses an event type it has no rule for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages import epoch, evaluations, plans, reflect, update, verdicts
from skillopt.machine.stages.protocol import Decision, StageGen, Texts

Derive = Callable[[Any, TrainerState, Any, Texts], StageGen | Decision]


def _final(c: Any, s: TrainerState, e: Any, t: Texts) -> Decision:
    if isinstance(c, tr.FinalTest):
        return evaluations.final_test(c, s)
    return evaluations.final_selection(c, s, t)


def _reflection(c: Any, s: TrainerState, e: Any, t: Texts) -> StageGen:
    return reflect.reflection(s, c.step, reflect.minibatch(s, e.minibatch_id), t)


DERIVED: dict[type[ev.Event], Derive] = {
    ev.BaselineEvaluated: lambda c, s, e, t: evaluations.baseline(c, s, t),
    ev.EpochPlanned: lambda c, s, e, t: plans.plan_epoch(c, s),
    ev.ReflectionPlanned: lambda c, s, e, t: plans.plan_reflection(c, s),
    ev.ReflectionProposed: _reflection,
    ev.PatchesMerged: lambda c, s, e, t: reflect.merge(c, s, t),
    ev.EditsSelected: lambda c, s, e, t: update.select(c, s, t),
    ev.CandidateBuilt: lambda c, s, e, t: update.update(c, s, t),
    ev.StepSkipped: lambda c, s, e, t: verdicts.skip_step(c, s),
    ev.CandidateEvaluated: lambda c, s, e, t: evaluations.candidate(c, s, t),
    ev.GateDecided: lambda c, s, e, t: verdicts.gate(c, s),
    ev.StepCompleted: lambda c, s, e, t: verdicts.complete_step(s),
    ev.AppendixFlushed: lambda c, s, e, t: verdicts.flush_appendix(c, s, t),
    ev.UpdateGated: lambda c, s, e, t: verdicts.update_gated(c, s, t),
    ev.ReviewPlanned: lambda c, s, e, t: plans.plan_review(c, s),
    ev.SlowUpdateDone: lambda c, s, e, t: epoch.slow_update(c, s, t),
    ev.MetaSkillDone: lambda c, s, e, t: epoch.meta_skill(c, s, t),
    ev.EpochCompleted: lambda c, s, e, t: plans.complete_epoch(c, s),
    ev.FinalEvaluated: _final,
    ev.RunCompleted: lambda c, s, e, t: plans.complete_run(c, s),
}

OBSERVED: frozenset[type[ev.Event]] = frozenset(
    {
        ev.RunCreated,  # the user's config and initial skill
        ev.SettingsChanged,  # a fork's changed settings
        ev.DatasetLoaded,  # what the environment holds
        ev.RolloutScored,  # what the target and the environment did
        ev.StageFailed,  # what went wrong outside
        ev.BudgetSet,  # the user raising a budget
        ev.BudgetExhausted,  # checked against the spending the state shows
    }
)

BENCH: frozenset[type[ev.Event]] = frozenset({ev.BenchStarted, ev.BenchTask, ev.BenchCompleted})
"""Events of bench runs: no training, no stage graph; `bench` resumes them by its plan check."""
