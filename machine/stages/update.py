"""Select (the edit budget and, over it, a ranking call) and update (build the candidate)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from skillopt.machine.core import events as ev
from skillopt.machine.core.canonical import sha256_text
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.edit_budget import edit_budget
from skillopt.machine.decisions.merge_plan import payload
from skillopt.machine.decisions.skilldoc import apply_edits, count_statuses, restore_protected
from skillopt.machine.loop import transitions as tr
from skillopt.machine.optimizer import asks
from skillopt.machine.optimizer.replies_memory import RewriteReply
from skillopt.machine.stages.protocol import Answer, Asking, StageGen, Texts, decided

Budget = tuple[int, int, ev.BudgetDecision | None]


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


def budget(
    state: TrainerState, pool: list[Any], step: int, text: Texts
) -> Generator[Asking, Answer[Any], Budget]:
    """(budget, schedule counter, decision): the schedule, the optimizer's choice, or no limit.
    Only the schedule advances its counter (as the reference), and the counter is state, so a
    resumed run gets the budgets an uninterrupted one would."""
    opt = state.cfg.optimizer
    control = state.cfg.budget_control
    if control == "none":
        return len(pool), state.budget_t, None
    if control == "fixed":
        t = state.budget_t + 1
        scheduled = edit_budget(
            opt.lr_scheduler,
            opt.learning_rate,
            opt.min_learning_rate,
            t,
            state.total_steps,
            state.cfg.parity,
        )
        return scheduled, t, None
    answer = yield Asking(asks.budget(state, pool, text), step, "budget", "decision")
    reply = answer.value
    if reply is None:  # an unusable decision applies nothing, explicitly
        decision = ev.BudgetDecision(
            ok=False, error=answer.error, fallback="zero", call=answer.call, reask=answer.reask
        )
        return 0, state.budget_t, decision
    decision = ev.BudgetDecision(
        ok=True,
        requested=reply.requested,
        reasoning=reply.reasoning,
        confidence=reply.confidence,
        risk_notes=reply.risk_notes,
        call=answer.call,
        reask=answer.reask,
    )
    return clamp_budget(reply.requested, len(pool)), state.budget_t, decision


def select(cmd: tr.Select, state: TrainerState, text: Texts) -> StageGen:
    p = state.progress
    assert p is not None and p.merged is not None
    opt = state.cfg.optimizer
    pool: list[Any] = payload(p.merged, opt.skill_update_mode)
    limit, t, decision = yield from budget(state, pool, cmd.step, text)
    ranking: ev.RankingRecord | None = None
    kept = list(range(len(pool)))
    if limit == 0:
        kept = []  # nothing this step, no ranking call
    elif len(pool) > limit:
        a = asks.ranking(state, pool, limit, text)
        answer = yield Asking(a, cmd.step, "rank", "ranking")
        parsed = answer.value
        if parsed is not None:
            kept = parsed.selected
            ranking = ev.RankingRecord(
                ok=True,
                reasoning=parsed.reasoning,
                raw_indices=parsed.raw_indices,
                invalid_indices=parsed.invalid,
                beyond_budget=parsed.beyond_budget,
                call=answer.call,
                reask=answer.reask,
            )
        else:  # both replies unusable: the first `limit`, recorded as such
            kept = kept[:limit]
            ranking = ev.RankingRecord(
                ok=False,
                error=answer.error,
                fallback="first_k",
                call=answer.call,
                reask=answer.reask,
            )
    chosen = [pool[i] for i in kept]
    rewrite = opt.skill_update_mode == "rewrite_from_suggestions"
    return decided(
        ev.EditsSelected(
            step=cmd.step,
            scheduler=opt.lr_scheduler,
            schedule_t=t,
            schedule_total=state.total_steps,
            budget=limit,
            n_merged=len(pool),
            kept_indices=kept,
            dropped_indices=[i for i in range(len(pool)) if i not in kept],
            edits=[] if rewrite else chosen,
            suggestions=chosen if rewrite else [],
            ranking=ranking,
            control=state.cfg.budget_control,  # type: ignore[arg-type]
            decision=decision,
        )
    )


def update(cmd: tr.Update, state: TrainerState, text: Texts) -> StageGen:
    p = state.progress
    assert p is not None
    mode = state.cfg.optimizer.skill_update_mode
    parent = text(p.parent_hash)
    rewrite: ev.RewriteRecord | None = None
    report: list[dict[str, object]] = []
    if mode == "patch":
        assert p.selected is not None
        candidate, report = apply_edits(parent, list(p.selected.edits), state.cfg.parity)
    elif mode == "rewrite_from_suggestions":
        assert p.selected is not None
        a = asks.rewrite(state, list(p.selected.suggestions), text)
        answer = yield Asking(a, cmd.step, "rewrite", "rewrite")
        rewrite, candidate = rewrite_outcome(
            answer.value, answer.error, parent, answer.call, answer.reask
        )
    else:
        assert p.merged is not None
        candidate = restore_protected(parent, text(p.merged.skill_candidates[0].skill_hash))
    applied, skipped = count_statuses(report)
    built = ev.CandidateBuilt(
        step=cmd.step,
        parent_hash=p.parent_hash,
        candidate_hash=sha256_text(candidate),
        report=[ev.ApplyRow(**row) for row in report],  # type: ignore[arg-type]
        n_applied=applied,
        n_skipped=skipped,
        length=len(candidate),
        mode=mode,  # type: ignore[arg-type]
        rewrite=rewrite,
    )
    return decided(built, [candidate])
