"""`replay --verify`: fold the events again and re-derive every recorded decision from its
recorded inputs. Two layers: each event must be one the transition table allows at that point
(graph.py), and its content must be what its own pure stage gives on the recorded inputs
(derived.py), or, for what the outside world said, consistent with them (observed.py). An
event type with no rule is refused. The first difference is reported with its seq."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.loop.reducer import apply
from skillopt.machine.stages.registry import DERIVED
from skillopt.machine.verify.common import Mismatch, Texts, same
from skillopt.machine.verify.derived import check_derived
from skillopt.machine.verify.graph import conforms
from skillopt.machine.verify.observed import OBSERVED_CHECKS

__all__ = ["Mismatch", "VerifyOutcome", "verify_events"]

# How `replay --verify --json` counts what it re-derived, by kind of decision.
CATEGORY: dict[type[ev.Event], str] = {
    ev.BaselineEvaluated: "aggregates",
    ev.CandidateEvaluated: "aggregates",
    ev.FinalEvaluated: "aggregates",
    ev.EpochPlanned: "plans",
    ev.ReflectionPlanned: "plans",
    ev.ReviewPlanned: "plans",
    ev.ReflectionProposed: "replies",
    ev.PatchesMerged: "merges",
    ev.EditsSelected: "budgets",
    ev.CandidateBuilt: "candidates",
    ev.GateDecided: "gate_verdicts",
    ev.UpdateGated: "gate_verdicts",
    ev.StepSkipped: "step_results",
    ev.StepCompleted: "step_results",
    ev.EpochCompleted: "step_results",
    ev.RunCompleted: "step_results",
    ev.AppendixFlushed: "appendix",
    ev.SlowUpdateDone: "epoch_memory",
    ev.MetaSkillDone: "epoch_memory",
}


@dataclass(frozen=True)
class VerifyOutcome:
    checks: dict[str, int]
    problem: tuple[int, str] | None


def check_event(state: TrainerState, event: ev.Event, texts: Texts) -> str:
    """Verify one event against the state before it; the kind of check it passed."""
    cmd = conforms(state, event)
    if type(event) in DERIVED:
        check_derived(cmd, state, event, texts)
        return CATEGORY[type(event)]
    observed = OBSERVED_CHECKS.get(type(event))
    if observed is None:
        raise Mismatch(f"verify has no rule for {event.TYPE} v{event.VERSION}")
    return observed(state, event, texts)


def verify_events(
    events: Sequence[tuple[int, ev.Event]], texts: Texts, run_name: str | None = None
) -> VerifyOutcome:
    """`run_name`: the name the ledger's runs table gives the run, checked against run.created."""
    state = TrainerState()
    checks: Counter[str] = Counter()
    for seq, event in events:
        try:
            if seq != state.seq + 1:
                raise Mismatch(f"seq {seq} follows seq {state.seq}: events must be gapless")
            if isinstance(event, ev.RunCreated) and run_name is not None:
                same("run name", event.run_name, run_name)
            kind = check_event(state, event, texts)
            checks["stage_graph"] += 1
            if kind:
                checks[kind] += 1
            state = apply(state, event)
        except Mismatch as exc:
            return VerifyOutcome(dict(checks), (seq, f"{event.TYPE}: {exc}"))
        except Exception as exc:  # a ledger that breaks the fold is a finding, not a crash
            return VerifyOutcome(
                dict(checks), (seq, f"{event.TYPE}: cannot be folded: {type(exc).__name__}: {exc}")
            )
    return VerifyOutcome(dict(checks), None)
