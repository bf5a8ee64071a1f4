"""The records that close an evaluation, from its recorded rollouts: the baseline, a
candidate (cached, a full pass or an early stop), and the final selection and test scores."""

from __future__ import annotations

from collections.abc import Sequence

from skillopt.machine.core import events as ev
from skillopt.machine.core.state import ItemScore, TrainerState, eval_key
from skillopt.machine.decisions import density
from skillopt.machine.decisions import gate as gate_rules
from skillopt.machine.decisions.scoring import aggregate, buckets, gate_score
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages.protocol import Decision, Texts, decided


def gate_of(state: TrainerState, hard: float, soft: float) -> float:
    e = state.cfg.evaluation
    return gate_score(hard, soft, e.gate_metric, e.gate_mixed_weight)


def selection_gate(
    state: TrainerState, hard: float, soft: float, skill_hash: str, text: Texts
) -> tuple[float, ev.DensityBonus | None]:
    """A skill's gate score on the selection split: the metric, plus the semantic-density bonus
    of its text when evaluation.use_semantic_density is on (the reference adds it to every
    selection gate score: baseline, candidates, gated updates, the final check)."""
    e = state.cfg.evaluation
    score = gate_of(state, hard, soft)
    if not e.use_semantic_density:
        return score, None
    extra = density.bonus(text(skill_hash), e.words(), e.semantic_density_weight)
    return score + extra.bonus, extra


def scores(
    state: TrainerState, phase: str, skill_hash: str, ids: Sequence[str]
) -> tuple[float, float, int, list[ItemScore]]:
    scored = state.scored(eval_key(phase, skill_hash))
    missing = [i for i in ids if i not in scored]
    if missing:
        raise ValueError(f"{phase} score of {skill_hash[:12]} lacks items {missing[:3]}")
    rows = [scored[i] for i in ids]
    hard, soft, n = aggregate((r.hard, r.soft) for r in rows)
    return hard, soft, n, rows


def baseline(cmd: tr.EvaluateBaseline, state: TrainerState, text: Texts) -> Decision:
    assert state.dataset is not None
    hard, soft, n, _ = scores(state, "selection", cmd.skill_hash, state.dataset.selection)
    score, bonus = selection_gate(state, hard, soft, cmd.skill_hash, text)
    return decided(
        ev.BaselineEvaluated(
            skill_hash=cmd.skill_hash,
            n=n,
            hard=hard,
            soft=soft,
            metric=state.cfg.evaluation.gate_metric,
            gate_score=score,
            density=bonus,
        )
    )


def candidate(cmd: tr.EvaluateCandidate, state: TrainerState, text: Texts) -> Decision:
    stop = None
    if cmd.cache_hit:
        cached = state.selection_cache[cmd.skill_hash]
        hard, soft, n = cached.hard, cached.soft, cached.n
    else:
        stop = gate_rules.early_stop(state, cmd.skill_hash, "step")
        hard, soft, n = gate_rules.evaluated_scores(state, cmd.skill_hash, stop)
    score, bonus = selection_gate(state, hard, soft, cmd.skill_hash, text)
    return decided(
        ev.CandidateEvaluated(
            step=cmd.step,
            skill_hash=cmd.skill_hash,
            n=n,
            hard=hard,
            soft=soft,
            metric=state.cfg.evaluation.gate_metric,
            gate_score=score,
            cache_hit=cmd.cache_hit,
            early_stop=stop,
            density=bonus,
        )
    )


def final_selection(cmd: tr.FinalSelection, state: TrainerState, text: Texts) -> Decision:
    """The final skill on the selection split; promoted to best when strictly better."""
    assert state.dataset is not None
    cached = state.selection_cache.get(cmd.skill_hash)
    if cached is not None:
        hard, soft, n = cached.hard, cached.soft, cached.n
    else:
        hard, soft, n, _ = scores(state, "selection", cmd.skill_hash, state.dataset.selection)
    score, bonus = selection_gate(state, hard, soft, cmd.skill_hash, text)
    return decided(
        ev.FinalEvaluated(
            split="selection",
            role="final",
            skill_hash=cmd.skill_hash,
            n=n,
            hard=hard,
            soft=soft,
            gate_score=score,
            reused=cached is not None,
            promoted=cmd.skill_hash != state.best_hash and score > state.best_score,
            best_score_before=state.best_score,
            density=bonus,
        )
    )


def final_test(cmd: tr.FinalTest, state: TrainerState) -> Decision:
    """One of the initial, best and final skills on the test split, with per-type buckets."""
    assert state.dataset is not None
    hard, soft, n, rows = scores(state, "test", cmd.skill_hash, state.dataset.test)
    table = buckets((r.task_type, r.hard, r.soft) for r in rows)
    return decided(
        ev.FinalEvaluated(
            split="test",
            role=cmd.role,  # type: ignore[arg-type]
            skill_hash=cmd.skill_hash,
            n=n,
            hard=hard,
            soft=soft,
            gate_score=gate_of(state, hard, soft),
            buckets={k: ev.ScoreBucket(**v) for k, v in table.items()},  # type: ignore[arg-type]
            reused=cmd.reuse,
        )
    )
