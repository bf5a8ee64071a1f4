"""Whether training can make progress: a run whose optimizer replies are all unusable trains
nothing, so it stops after `optimizer.max_unusable_steps` such steps in a row, with one line
that names the role, backend, model, the parse error and its likely cause."""

from __future__ import annotations

from skillopt.machine.core.events import ReflectionProposed
from skillopt.machine.core.state import TrainerState


def _last_unusable(state: TrainerState) -> ReflectionProposed | None:
    """A reflection of the latest step skipped as reflection_unusable (its last minibatch)."""
    for record in reversed(state.records):
        if record.action == "skip_reflection_unusable":
            progress = state.details.get(record.step)
            proposals = list(progress.proposals.values()) if progress is not None else []
            return proposals[-1] if proposals else None
    return None


def likely_cause(
    error: str, outputs: list[int], max_tokens: int, structured: bool, role: str = "optimizer"
) -> str:
    """What most likely made a reply unusable (from its error, the output tokens of its calls
    and the role's settings), and the setting that fixes it."""
    if any(n >= max_tokens for n in outputs):
        return f"the reply was cut at max_tokens: raise models.{role}.max_tokens"
    if "JSON" in error and structured:
        return (
            "the server ignored the structured-output request: try "
            f"models.{role}.options.structured_output: false, or a model that follows it"
        )
    return "the replies do not match the requested schema: read one with `skillopt calls show`"


JUDGE_UNUSABLE = "judge reply unusable"  # the task environment's judge scorer error


def judge_unusable(state: TrainerState, step: int) -> bool:
    """Whether the judge's replies were unusable on every train item of the step."""
    reasons = [s.fail_reason for s in state.step_items(step).values()]
    return bool(reasons) and all(JUDGE_UNUSABLE in r for r in reasons)


def _judge_stop(state: TrainerState, limit: int) -> str | None:
    """The judge's replies were unusable on every train item of `limit` steps in a row."""
    judge = state.cfg.models.judge
    if judge is None or state.judge_unusable_streak < limit:
        return None
    reasons = [s.fail_reason for s in state.step_items(state.steps_completed).values()]
    error = reasons[-1].split(JUDGE_UNUSABLE + ": ", 1)[-1]
    structured = bool(judge.options.get("structured_output", True))
    cause = likely_cause(error, [], judge.max_tokens or 512, structured, "judge")
    return (
        f"{limit} steps in a row had no usable judge reply on any train item (role judge, "
        f"backend {judge.backend}, model {judge.model}): {error}; {cause}; then fork the run "
        "with the fix (`skillopt fork --at SEQ --set ...`) to continue"
    )


def unusable_stop(state: TrainerState) -> str | None:
    """Why the run must stop before its next stage (None: it may go on)."""
    limit = state.cfg.optimizer.max_unusable_steps
    if not limit:
        return None
    if state.unusable_streak < limit:
        return _judge_stop(state, limit)
    role = state.cfg.models.optimizer
    last = _last_unusable(state)
    error = last.error if last is not None else "no usable reply"
    calls = [] if last is None else [c for c in (last.call, last.reask) if c is not None]
    structured = bool(role.options.get("structured_output", True))
    limit = role.max_tokens or 4096  # the optimizer's default (commands/stages/calls.py)
    cause = likely_cause(error, [c.tokens.output for c in calls], limit, structured)
    return (
        f"{state.unusable_streak} steps in a row had no usable optimizer reply (role optimizer, "
        f"backend {role.backend}, model {role.model}): {error}; {cause}; then fork the run "
        "with the fix (`skillopt fork --at SEQ --set ...`) to continue"
    )
