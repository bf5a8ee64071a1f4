"""How a step ends: the current and best skills after its gate verdict or its skip."""

from __future__ import annotations

from skillopt.machine.core.events import StepCompleted
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.scoring import effects


def _with_appendix(
    state: TrainerState, current: tuple[str, float], best: tuple[str, float, int]
) -> tuple[tuple[str, float], tuple[str, float, int]]:
    """An appendix flush changes the post-verdict current skill: directly (its score carried) or,
    when gated, only if its own verdict accepts it."""
    p = state.progress
    a = p.appendix if p is not None else None
    if p is None or a is None or a.skill_hash == a.parent_hash:
        return current, best
    if not a.gated:
        return (a.skill_hash, current[1]), best
    g = p.appendix_gate
    assert g is not None, "a gated appendix flush has no verdict yet"
    becomes_current, becomes_best = effects(g.action, g.gate_score, best[1])
    if becomes_current:
        current = (a.skill_hash, g.gate_score)
    if becomes_best:
        best = (a.skill_hash, g.gate_score, p.step)
    return current, best


def post_verdict(state: TrainerState) -> tuple[str, float, float]:
    """(current hash, current score, best score) after the step's verdict, before any flush."""
    done = step_completion(state, appendix=False)
    return done.current_hash, done.current_score, done.best_score


def step_completion(state: TrainerState, appendix: bool = True) -> StepCompleted:
    """The step.completed that follows the step's gate.decided or step.skipped."""
    p = state.progress
    assert p is not None and (p.decided or p.skipped), "the step has no verdict yet"
    current = (state.current_hash, state.current_score)
    best = (state.best_hash, state.best_score, state.best_step)
    if p.decided is not None:
        d = p.decided
        action = d.action
        becomes_current, becomes_best = effects(d.action, d.candidate_score, state.best_score)
        if becomes_current:
            current = (d.candidate_hash, d.candidate_score)
        if becomes_best:
            best = (d.candidate_hash, d.candidate_score, p.step)
    else:
        assert p.skipped is not None
        action = f"skip_{p.skipped.reason}"
    if appendix:
        current, best = _with_appendix(state, current, best)
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
