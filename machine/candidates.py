"""Pure decisions of the select and update stages that the modes add."""

from __future__ import annotations

from machine import events as ev
from machine.replies_memory import RewriteReply
from machine.skilldoc import restore_protected


def clamp_budget(requested: int, available: int) -> int:
    """The optimizer's edit count, clamped to what is available."""
    return max(0, min(requested, available))


def rewrite_outcome(
    reply: RewriteReply | None,
    error: str,
    parent: str,
    call: ev.CallRecord,
    reask: ev.CallRecord | None,
) -> tuple[ev.RewriteRecord, str]:
    """The rewrite record and the candidate text: the parent itself when the reply was
    unusable (the step is then skipped as no_rewrite), else the new body under the parent's
    protected regions."""
    if reply is None:
        return ev.RewriteRecord(ok=False, error=error, call=call, reask=reask), parent
    record = ev.RewriteRecord(
        ok=True,
        reasoning=reply.reasoning,
        change_summary=reply.change_summary,
        call=call,
        reask=reask,
    )
    return record, restore_protected(parent, reply.new_skill)
