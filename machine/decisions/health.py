"""Whether training can make progress: a run whose optimizer replies are all unusable trains
nothing, so it stops after `optimizer.max_unusable_steps` such steps in a row, with one line
that names the role, backend, model, the parse error and its likely cause."""

from __future__ import annotations

from skillopt.machine.core.events import CallRecord, ReflectionProposed
from skillopt.machine.core.state import TrainerState


def _last_unusable(state: TrainerState) -> ReflectionProposed | None:
    """A reflection of the latest step skipped as reflection_unusable (its last minibatch)."""
    for record in reversed(state.records):
        if record.action == "skip_reflection_unusable":
            progress = state.details.get(record.step)
            proposals = list(progress.proposals.values()) if progress is not None else []
            return proposals[-1] if proposals else None
    return None


def likely_cause(error: str, calls: list[CallRecord], max_tokens: int, structured: bool) -> str:
    """What most likely made a reply unusable, and the setting that fixes it."""
    if any(c.tokens.output >= max_tokens for c in calls):
        return "the reply was cut at max_tokens: raise models.optimizer.max_tokens"
    if "JSON" in error and structured:
        return (
            "the server ignored the structured-output request: try "
            "models.optimizer.options.structured_output: false, or a model that follows it"
        )
    return "the replies do not match the requested schema: read one with `skillopt calls show`"


def unusable_stop(state: TrainerState) -> str | None:
    """Why the run must stop before its next stage (None: it may go on)."""
    limit = state.cfg.optimizer.max_unusable_steps
    if not limit or state.unusable_streak < limit:
        return None
    role = state.cfg.models.optimizer
    last = _last_unusable(state)
    error = last.error if last is not None else "no usable reply"
    calls = [] if last is None else [c for c in (last.call, last.reask) if c is not None]
    structured = bool(role.options.get("structured_output", True))
    cause = likely_cause(error, calls, role.max_tokens, structured)
    return (
        f"{state.unusable_streak} steps in a row had no usable optimizer reply (role optimizer, "
        f"backend {role.backend}, model {role.model}): {error}; {cause}; then fork the run "
        "with the fix (`skillopt fork --at SEQ --set ...`) to continue"
    )
