"""Select (budget and ranking), update (apply edits), gate, and the skip edges of a step."""

from __future__ import annotations

from commands.context import StageContext, load_template
from commands.stages import HandlerGen
from commands.stages.calls import ask_and_parse
from machine import events as ev
from machine import transitions as tr
from machine.prompts import edit_hints, ranking_user_message
from machine.reducer import apply
from machine.replies import RANKING_SCHEMA, parse_ranking
from machine.schedule import edit_budget
from machine.scoring import decide_gate
from machine.skilldoc import apply_edits, count_statuses
from machine.state import TrainerState
from machine.steps import step_completion


def select(cmd: tr.Select, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None and p.merged is not None
    opt = state.cfg.optimizer
    t = state.budget_t + 1
    budget = edit_budget(
        opt.lr_scheduler, opt.learning_rate, opt.min_learning_rate, t, state.total_steps
    )
    merged = list(p.merged.edits)
    ranking: ev.RankingRecord | None = None
    kept = list(range(len(merged)))
    if budget == 0:
        kept = []  # a schedule floor of 0: nothing this step, no ranking call
    elif len(merged) > budget:
        skill = ctx.text(p.parent_hash)
        hints = {"edits": edit_hints(merged), "budget": budget}
        answer = ask_and_parse(
            ctx,
            "rank",
            load_template("rank"),
            ranking_user_message(skill, merged, budget),
            hints,
            RANKING_SCHEMA,
            lambda text: parse_ranking(text, len(merged), budget),
            step=cmd.step,
            unit="rank",
        )
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
        else:  # both replies unusable: the first `budget` edits, recorded as such
            kept = kept[:budget]
            ranking = ev.RankingRecord(
                ok=False,
                error=answer.error,
                fallback="first_k",
                call=answer.call,
                reask=answer.reask,
            )
    yield ev.EditsSelected(
        step=cmd.step,
        scheduler=opt.lr_scheduler,
        schedule_t=t,
        schedule_total=state.total_steps,
        budget=budget,
        n_merged=len(merged),
        kept_indices=kept,
        dropped_indices=[i for i in range(len(merged)) if i not in kept],
        edits=[merged[i] for i in kept],
        ranking=ranking,
    )


def update(cmd: tr.Update, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None and p.selected is not None
    candidate, report = apply_edits(ctx.text(p.parent_hash), list(p.selected.edits))
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
    )


def skip_step(cmd: tr.SkipStep, state: TrainerState, ctx: StageContext) -> HandlerGen:
    skipped = ev.StepSkipped(
        step=cmd.step,
        epoch=state.epoch_of(cmd.step),
        reason=cmd.reason,  # type: ignore[arg-type]
        skill_hash=state.current_hash,
    )
    yield [skipped, step_completion(apply(state, skipped))]


def gate(cmd: tr.Gate, state: TrainerState, ctx: StageContext) -> HandlerGen:
    p = state.progress
    assert p is not None and p.evaluated is not None and p.candidate is not None
    e = state.cfg.evaluation
    score = p.evaluated.gate_score
    verdict = decide_gate(score, state.current_score, state.best_score, e.use_gate)
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
    )
    yield [decided, step_completion(apply(state, decided))]


def complete_step(cmd: tr.CompleteStep, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """Only reached if a verdict was recorded without its step.completed (never by our handlers,
    which append both in one transaction); the table still says what follows."""
    yield step_completion(state)
