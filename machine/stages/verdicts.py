"""How a step ends: its skip, its gate verdict, its appendix flush (and consolidation), its
completion; and the verdict on a slow-update or appendix skill."""

from __future__ import annotations

from skillopt.machine.core import events as ev
from skillopt.machine.core.canonical import sha256_text
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions import gate as gate_rules
from skillopt.machine.decisions.skilldoc import add_notes, appendix_notes, with_appendix
from skillopt.machine.decisions.steps import post_verdict, step_completion
from skillopt.machine.loop import transitions as tr
from skillopt.machine.optimizer import asks
from skillopt.machine.stages.evaluations import selection_gate
from skillopt.machine.stages.protocol import Asking, Decision, StageGen, Texts, decided


def skip_step(cmd: tr.SkipStep, state: TrainerState) -> Decision:
    return decided(
        ev.StepSkipped(
            step=cmd.step,
            epoch=state.epoch_of(cmd.step),
            reason=cmd.reason,  # type: ignore[arg-type]
            skill_hash=state.current_hash,
        )
    )


def gate(cmd: tr.Gate, state: TrainerState) -> Decision:
    p = state.progress
    assert p is not None and p.evaluated is not None and p.candidate is not None
    e = state.cfg.evaluation
    score = p.evaluated.gate_score
    base = gate_rules.baseline(state, "step")
    verdict, paired = gate_rules.verdict(
        state, p.evaluated.skill_hash, score, p.evaluated.early_stop, base
    )
    bonus = p.evaluated.density
    return decided(
        ev.GateDecided(
            step=cmd.step,
            epoch=p.epoch,
            candidate_hash=p.candidate.candidate_hash,
            action=verdict.action,  # type: ignore[arg-type]
            metric=e.gate_metric,
            use_gate=e.use_gate,
            candidate_score=score,
            current_score=state.current_score,
            best_score=state.best_score,
            rule=_with_density(verdict.rule, bonus),
            paired=paired,
            density=bonus,
        )
    )


def _with_density(rule: str, bonus: ev.DensityBonus | None) -> str:
    if bonus is None:
        return rule
    return (
        f"{rule}; scores include the semantic-density bonus (this skill: "
        f"{bonus.leading}/{bonus.words} leading words x {bonus.weight:g} = +{bonus.bonus:.4f})"
    )


def complete_step(state: TrainerState) -> Decision:
    return decided(step_completion(state))


def flush_appendix(cmd: tr.FlushAppendix, state: TrainerState, text: Texts) -> StageGen:
    """The step's execution-lapse notes go into the APPENDIX region of the skill current after
    the verdict (accept, reject or skip alike), de-duplicated; past the threshold one
    consolidation call compacts them, kept only if non-empty and strictly shorter."""
    p = state.progress
    assert p is not None
    opt = state.cfg.optimizer
    notes = tr.appendix_notes_due(state, p)
    parent_hash, _, _ = post_verdict(state)
    parity = state.cfg.parity
    skill, added, duplicates = add_notes(text(parent_hash), notes, parity)
    consolidation = None
    total = appendix_notes(skill, parity)
    threshold = opt.skill_aware_consolidate_threshold
    if added and threshold and len(total) > threshold:
        a = asks.consolidation(total)
        answer = yield Asking(a, cmd.step, "consolidate", "consolidation")
        compacted = answer.value
        kept = bool(compacted) and len(compacted) < len(total)
        consolidation = ev.ConsolidationRecord(
            ok=compacted is not None,
            error=answer.error,
            kept=kept,
            before=len(total),
            notes=compacted or [],
            call=answer.call,
            reask=answer.reask,
        )
        if kept:
            skill = with_appendix(skill, compacted)
            total = appendix_notes(skill, parity)
    flushed = ev.AppendixFlushed(
        step=cmd.step,
        epoch=p.epoch,
        parent_hash=parent_hash,
        skill_hash=sha256_text(skill),
        notes=notes,
        added=added,
        duplicates=duplicates,
        total=len(total),
        consolidation=consolidation,
        gated=opt.appendix_gated,
    )
    return decided(flushed, [skill])


def update_gated(cmd: tr.GateUpdate, state: TrainerState, text: Texts) -> Decision:
    """A slow-update or appendix skill, once its selection rollouts are recorded, gated against
    the current skill as a step's candidate is."""
    stop = None
    if cmd.cache_hit:
        cached = state.selection_cache[cmd.skill_hash]
        hard, soft, n = cached.hard, cached.soft, cached.n
    else:
        stop = gate_rules.early_stop(state, cmd.skill_hash, cmd.kind)
        hard, soft, n = gate_rules.evaluated_scores(state, cmd.skill_hash, stop)
    score, bonus = selection_gate(state, hard, soft, cmd.skill_hash, text)
    base = gate_rules.baseline(state, cmd.kind)
    verdict, paired = gate_rules.verdict(state, cmd.skill_hash, score, stop, base)
    return decided(
        ev.UpdateGated(
            kind=cmd.kind,  # type: ignore[arg-type]
            step=cmd.step,
            epoch=cmd.epoch,
            skill_hash=cmd.skill_hash,
            n=n,
            hard=hard,
            soft=soft,
            gate_score=score,
            cache_hit=cmd.cache_hit,
            action=verdict.action,  # type: ignore[arg-type]
            current_score=base.current_score,
            best_score=base.best_score,
            rule=_with_density(verdict.rule, bonus),
            early_stop=stop,
            paired=paired,
            density=bonus,
        )
    )
