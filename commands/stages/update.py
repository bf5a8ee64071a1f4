"""Select (budget and ranking), update (apply edits), gate, and the skip edges of a step."""

from __future__ import annotations

from typing import Any

from commands.context import StageContext
from commands.stages import HandlerGen
from commands.stages.calls import send
from machine import asks, gate_rules
from machine import events as ev
from machine import transitions as tr
from machine.candidates import clamp_budget, rewrite_outcome
from machine.merge import payload
from machine.reducer import apply
from machine.schedule import edit_budget
from machine.skilldoc import apply_edits, count_statuses, restore_protected
from machine.state import TrainerState
from machine.steps import step_completion


def _decide_budget(
    ctx: StageContext, state: TrainerState, pool: list[Any], step: int
) -> tuple[int, int, ev.BudgetDecision | None]:
    """(budget, schedule counter, decision): the schedule, the optimizer's choice, or no limit.
    Only the schedule advances its counter (as the reference), and the counter is state, so a
    resumed run gets the budgets an uninterrupted one would."""
    opt = state.cfg.optimizer
    control = opt.control
    if control == "none":
        return len(pool), state.budget_t, None
    if control == "fixed":
        t = state.budget_t + 1
        scheduled = edit_budget(
            opt.lr_scheduler, opt.learning_rate, opt.min_learning_rate, t, state.total_steps
        )
        return scheduled, t, None
    answer = send(ctx, asks.budget(state, pool, ctx.text), step=step, unit="budget")
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


def select(cmd: tr.Select, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None and p.merged is not None
    opt = state.cfg.optimizer
    pool: list[Any] = payload(p.merged, opt.skill_update_mode)
    budget, t, decision = _decide_budget(ctx, state, pool, cmd.step)
    ranking: ev.RankingRecord | None = None
    kept = list(range(len(pool)))
    if budget == 0:
        kept = []  # nothing this step, no ranking call
    elif len(pool) > budget:
        answer = send(ctx, asks.ranking(state, pool, budget, ctx.text), step=cmd.step, unit="rank")
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
        else:  # both replies unusable: the first `budget`, recorded as such
            kept = kept[:budget]
            ranking = ev.RankingRecord(
                ok=False,
                error=answer.error,
                fallback="first_k",
                call=answer.call,
                reask=answer.reask,
            )
    chosen = [pool[i] for i in kept]
    rewrite = opt.skill_update_mode == "rewrite_from_suggestions"
    yield ev.EditsSelected(
        step=cmd.step,
        scheduler=opt.lr_scheduler,
        schedule_t=t,
        schedule_total=state.total_steps,
        budget=budget,
        n_merged=len(pool),
        kept_indices=kept,
        dropped_indices=[i for i in range(len(pool)) if i not in kept],
        edits=[] if rewrite else chosen,
        suggestions=chosen if rewrite else [],
        ranking=ranking,
        control=opt.control,  # type: ignore[arg-type]
        decision=decision,
    )


def update(cmd: tr.Update, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None
    mode = state.cfg.optimizer.skill_update_mode
    parent = ctx.text(p.parent_hash)
    rewrite: ev.RewriteRecord | None = None
    report: list[dict[str, object]] = []
    if mode == "patch":
        assert p.selected is not None
        candidate, report = apply_edits(parent, list(p.selected.edits))
    elif mode == "rewrite_from_suggestions":
        assert p.selected is not None
        a = asks.rewrite(state, list(p.selected.suggestions), ctx.text)
        answer = send(ctx, a, step=cmd.step, unit="rewrite")
        rewrite, candidate = rewrite_outcome(
            answer.value, answer.error, parent, answer.call, answer.reask
        )
    else:
        assert p.merged is not None
        candidate = restore_protected(parent, ctx.text(p.merged.skill_candidates[0].skill_hash))
    (candidate_hash,) = ctx.store(candidate)
    applied, skipped = count_statuses(report)
    yield ev.CandidateBuilt(
        step=cmd.step,
        parent_hash=p.parent_hash,
        candidate_hash=candidate_hash,
        report=[ev.ApplyRow(**row) for row in report],  # type: ignore[arg-type]
        n_applied=applied,
        n_skipped=skipped,
        length=len(candidate),
        mode=mode,  # type: ignore[arg-type]
        rewrite=rewrite,
    )


def skip_step(cmd: tr.SkipStep, state: TrainerState, ctx: StageContext) -> HandlerGen:
    skipped = ev.StepSkipped(
        step=cmd.step,
        epoch=state.epoch_of(cmd.step),
        reason=cmd.reason,  # type: ignore[arg-type]
        skill_hash=state.current_hash,
    )
    yield with_completion(state, skipped)


def gate(cmd: tr.Gate, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None and p.evaluated is not None and p.candidate is not None
    e = state.cfg.evaluation
    score = p.evaluated.gate_score
    base = gate_rules.baseline(state, "step")
    verdict, paired = gate_rules.verdict(
        state, p.evaluated.skill_hash, score, p.evaluated.early_stop, base
    )
    decided = ev.GateDecided(
        step=cmd.step,
        epoch=p.epoch,
        candidate_hash=p.candidate.candidate_hash,
        action=verdict.action,  # type: ignore[arg-type]
        metric=e.gate_metric,
        use_gate=e.use_gate,
        candidate_score=score,
        current_score=state.current_score,
        best_score=state.best_score,
        rule=verdict.rule,
        paired=paired,
    )
    yield with_completion(state, decided)


def with_completion(state: TrainerState, verdict: ev.Event) -> list[ev.Event]:
    """The verdict, and the step's completion in the same transaction when nothing (an appendix
    flush) comes between them."""
    after = apply(state, verdict)
    if isinstance(tr.next_command(after), tr.CompleteStep):
        return [verdict, step_completion(after)]
    return [verdict]


def complete_step(cmd: tr.CompleteStep, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """After an appendix flush (or a verdict recorded without its completion)."""
    yield step_completion(state)
