"""How a step ends: the current and best skills after its gate verdict or its skip."""

from __future__ import annotations

from machine.events import StepCompleted
from machine.scoring import decide_gate
from machine.state import TrainerState


def step_completion(state: TrainerState) -> StepCompleted:
    """The step.completed that follows the step's gate.decided or step.skipped."""
    p = state.progress
    assert p is not None and (p.decided or p.skipped), "the step has no verdict yet"
    current = (state.current_hash, state.current_score)
    best = (state.best_hash, state.best_score, state.best_step)
    if p.decided is not None:
        d = p.decided
        action = d.action
        verdict = decide_gate(d.candidate_score, state.current_score, state.best_score, d.use_gate)
        if verdict.becomes_current:
            current = (d.candidate_hash, d.candidate_score)
        if verdict.becomes_best:
            best = (d.candidate_hash, d.candidate_score, p.step)
    else:
        assert p.skipped is not None
        action = f"skip_{p.skipped.reason}"
    return StepCompleted(
        step=p.step,
        epoch=p.epoch,
        action=action,
        current_hash=current[0],
        current_score=current[1],
        best_hash=best[0],
        best_score=best[1],
        best_step=best[2],
    )
