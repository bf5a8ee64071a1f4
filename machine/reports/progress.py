"""The line `skillopt run` prints after each stage: where the run is, what the stage decided,
the best score so far, what was spent (and the budget), unusable replies, and an estimate of
the time left. Pure: the shell hands in the stage's events and its own timing."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.spending import limits, spent


def _what(stage: str, appended: Sequence[ev.Event]) -> str:
    """What the stage did, in a few words."""
    for e in appended:
        if isinstance(e, ev.GateDecided):
            return (
                f"{e.action} (candidate {e.candidate_score:.4f} vs current {e.current_score:.4f})"
            )
        if isinstance(e, ev.UpdateGated):
            return f"{e.kind} gate {e.action} ({e.gate_score:.4f} vs {e.current_score:.4f})"
        if isinstance(e, ev.StepSkipped):
            return f"step skipped ({e.reason})"
        if isinstance(e, ev.FinalEvaluated):
            return f"{e.split} {e.role}: {e.gate_score:.4f}"
        if isinstance(e, ev.EditsSelected):
            return f"kept {len(e.kept_indices)} of {e.n_merged} (budget {e.budget})"
        if isinstance(e, ev.CandidateBuilt):
            return (
                f"candidate {e.candidate_hash[:12]}: {e.n_applied} applied, {e.n_skipped} skipped"
            )
        if isinstance(e, ev.PatchesMerged):
            return f"{len(e.nodes)} merge calls"
    scored = [e for e in appended if isinstance(e, ev.RolloutScored)]
    if scored:
        hard = sum(e.hard for e in scored) / len(scored)
        return f"{len(scored)} rollouts, hard {hard:.3f}"
    proposals = [e for e in appended if isinstance(e, ev.ReflectionProposed)]
    if proposals:
        unusable = sum(1 for e in proposals if not e.ok)
        return f"{len(proposals)} reflections" + (f", {unusable} unusable" if unusable else "")
    return f"+{len(appended)} events"


STEP_BOUNDARIES = ("baseline.evaluated", "step.completed")  # when step 1 begins; each step ends


def eta_seconds(times: Sequence[float], steps_left: int) -> float | None:
    """The time left, from the recorded times (seconds) of STEP_BOUNDARIES events, oldest
    first: the median of the last ten steps' durations times the steps left. Recorded, so a
    resumed run has an ETA from its first line; the median, so a pause (a run stopped for a
    night, then resumed) does not stretch it. None before a step has ended."""
    if steps_left <= 0 or len(times) < 2:
        return None
    last = times[-11:]
    durations = [b - a for a, b in zip(last, last[1:], strict=False)]
    return max(0.0, statistics.median(durations)) * steps_left


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_line(
    state: TrainerState,
    stage: str,
    step: int | None,
    appended: Sequence[ev.Event],
    eta_s: float | None,
) -> str:
    """`step`: the stage's step, None for stages outside a step (the state's is shown)."""
    p = state.progress
    if step is None or step == 0:
        step = p.step if p is not None else state.steps_completed
    epoch = state.epoch_of(step) if step and state.dataset is not None else state.epoch
    where = f"epoch {epoch}/{state.cfg.train.num_epochs} step {step}/{state.total_steps}"
    cost, tokens = spent(state)
    usd, max_tokens = limits(state)
    spend = f"{tokens:,} tokens" + (f" of {max_tokens:,}" if max_tokens is not None else "")
    if cost is not None and tokens:
        spend += f", ${cost:.4f}" + (f" of ${usd:.2f}" if usd is not None else "")
    parts = [f"{where} {stage}: {_what(stage, appended)}"]
    if state.baseline is not None:
        parts.append(f"best {state.best_score:.4f}")
    parts.append(spend)
    if state.unusable:
        parts.append(f"unusable replies {sum(state.unusable.values())}")
    if eta_s is not None and state.completed is None:
        parts.append(f"ETA {_duration(eta_s)}")
    return "; ".join(parts)
