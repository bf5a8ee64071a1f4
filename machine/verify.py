"""`replay --verify`: fold the events again and re-derive every recorded decision from its
recorded inputs. The first difference is reported with its seq; nothing is trusted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from machine import events as ev
from machine.canonical import derive_seed, sha256_text
from machine.reducer import apply
from machine.schedule import edit_budget
from machine.scoring import aggregate, buckets, decide_gate, gate_score, is_failure
from machine.skilldoc import apply_edits, count_statuses
from machine.state import TrainerState, eval_key


@dataclass(frozen=True)
class VerifyOutcome:
    checks: dict[str, int]
    problem: tuple[int, str] | None


class Mismatch(Exception):
    pass


def _same(what: str, recorded: Any, derived: Any) -> None:
    if recorded != derived:
        raise Mismatch(f"{what}: recorded {recorded!r}, re-derived {derived!r}")


def _blob(texts: Mapping[str, str], hash_: str, what: str) -> str:
    text = texts.get(hash_)
    if text is None:
        raise Mismatch(f"{what}: blob {hash_[:12]} is missing")
    if sha256_text(text) != hash_:
        raise Mismatch(f"{what}: blob {hash_[:12]} does not hash to its key")
    return text


def _eval_scores(
    s: TrainerState, phase: str, skill: str, ids: Sequence[str]
) -> tuple[float, float, int]:
    scored = s.scored(eval_key(phase, skill))
    missing = [i for i in ids if i not in scored]
    if missing:
        raise Mismatch(f"{phase} score of {skill[:12]} lacks items {missing[:3]}")
    return aggregate((scored[i].hard, scored[i].soft) for i in ids)


def _check_scores(s: TrainerState, e: Any, phase: str, ids: Sequence[str]) -> None:
    hard, soft, n = _eval_scores(s, phase, e.skill_hash, ids)
    _same("n", e.n, n)
    _same("hard", e.hard, hard)
    _same("soft", e.soft, soft)
    c = s.cfg.evaluation
    _same("gate_score", e.gate_score, gate_score(hard, soft, c.gate_metric, c.gate_mixed_weight))


def _run_created(s: TrainerState, e: ev.RunCreated, texts: Mapping[str, str]) -> str:
    _blob(texts, e.initial_skill_hash, "initial skill")
    return "blobs"


def _rollout(s: TrainerState, e: ev.RolloutScored, texts: Mapping[str, str]) -> str:
    _blob(texts, e.trajectory_hash, f"trajectory of {e.item_id}")
    return "blobs"


def _baseline(s: TrainerState, e: ev.BaselineEvaluated, texts: Mapping[str, str]) -> str:
    _same("baseline skill", e.skill_hash, s.initial_hash)
    assert s.dataset is not None
    _check_scores(s, e, "selection", s.dataset.selection)
    return "aggregates"


def _epoch(s: TrainerState, e: ev.EpochPlanned, texts: Mapping[str, str]) -> str:
    assert s.dataset is not None
    _same("epoch seed", e.seed, derive_seed(s.cfg.train.seed, e.epoch, 0, "epoch_plan"))
    planned = {i for step in e.steps for batch in step for i in batch}
    _same("epoch covers the train split", planned, set(s.dataset.train))
    return "plans"


def _reflection_plan(s: TrainerState, e: ev.ReflectionPlanned, texts: Mapping[str, str]) -> str:
    items = s.step_items(e.step)
    hard, soft, n = aggregate((x.hard, x.soft) for x in items.values())
    _same("rollout aggregate", (e.rollout_hard, e.rollout_soft, e.rollout_n), (hard, soft, n))
    fails = {i for i, x in items.items() if is_failure(x.hard)}
    g = s.cfg.gradient
    for kind, want in (("failure", fails), ("success", set(items) - fails)):
        got = [i for m in e.minibatches if m.source_type == kind for i in m.item_ids]
        expected = set() if kind == "success" and g.failure_only else want
        _same(f"{kind} minibatch items", sorted(got), sorted(expected))
    if any(len(m.item_ids) > g.minibatch_size for m in e.minibatches):
        raise Mismatch("a minibatch exceeds gradient.minibatch_size")
    return "reflection_plans"


def _merged(s: TrainerState, e: ev.PatchesMerged, texts: Mapping[str, str]) -> str:
    p = s.progress
    assert p is not None
    sources = {k: list(v.edits) for k, v in p.proposals.items()}
    for node in e.nodes:
        if node.fallback == "concatenate":
            _same(
                f"fallback of {node.id}", node.edits, [x for i in node.inputs for x in sources[i]]
            )
        sources[node.id] = list(node.edits)
    _same("merged edits", e.edits, sources.get(e.root))
    return "merges"


def _selected(s: TrainerState, e: ev.EditsSelected, texts: Mapping[str, str]) -> str:
    p = s.progress
    assert p is not None and p.merged is not None
    o = s.cfg.optimizer
    _same("schedule t", e.schedule_t, s.budget_t + 1)
    _same(
        "budget",
        e.budget,
        edit_budget(
            o.lr_scheduler, o.learning_rate, o.min_learning_rate, e.schedule_t, s.total_steps
        ),
    )
    merged = list(p.merged.edits)
    if len(merged) <= e.budget:
        _same("kept (within budget)", e.kept_indices, list(range(len(merged))))
    if len(e.kept_indices) > e.budget:
        raise Mismatch(f"{len(e.kept_indices)} edits kept over a budget of {e.budget}")
    _same("selected edits", e.edits, [merged[i] for i in e.kept_indices])
    return "budgets"


def _built(s: TrainerState, e: ev.CandidateBuilt, texts: Mapping[str, str]) -> str:
    p = s.progress
    assert p is not None and p.selected is not None
    _same("parent", e.parent_hash, p.parent_hash)
    text, report = apply_edits(_blob(texts, e.parent_hash, "parent skill"), list(p.selected.edits))
    _same("candidate hash", e.candidate_hash, sha256_text(text))
    _same("apply report", [r.model_dump() for r in e.report], report)
    _same("applied/skipped", (e.n_applied, e.n_skipped), count_statuses(report))
    _blob(texts, e.candidate_hash, "candidate skill")
    return "candidates"


def _evaluated(s: TrainerState, e: ev.CandidateEvaluated, texts: Mapping[str, str]) -> str:
    p = s.progress
    assert p is not None and p.candidate is not None and s.dataset is not None
    _same("evaluated skill", e.skill_hash, p.candidate.candidate_hash)
    if e.cache_hit:
        cached = s.selection_cache.get(e.skill_hash)
        if cached is None:
            raise Mismatch("cache hit recorded for a skill never evaluated")
        _same("cached score", (e.hard, e.soft, e.n), (cached.hard, cached.soft, cached.n))
    else:
        _check_scores(s, e, "selection", s.dataset.selection)
    return "aggregates"


def _gate(s: TrainerState, e: ev.GateDecided, texts: Mapping[str, str]) -> str:
    p = s.progress
    assert p is not None and p.evaluated is not None
    _same("candidate score", e.candidate_score, p.evaluated.gate_score)
    _same("current score", e.current_score, s.current_score)
    _same("best score", e.best_score, s.best_score)
    verdict = decide_gate(
        e.candidate_score, e.current_score, e.best_score, s.cfg.evaluation.use_gate
    )
    _same("gate action", e.action, verdict.action)
    _same("gate rule", e.rule, verdict.rule)
    return "gate_verdicts"


def _completed(s: TrainerState, e: ev.StepCompleted, texts: Mapping[str, str]) -> str:
    p = s.progress
    assert p is not None
    current = (s.current_hash, s.current_score)
    best = (s.best_hash, s.best_score, s.best_step)
    if p.decided is not None:
        _same("step action", e.action, p.decided.action)
        verdict = decide_gate(
            p.decided.candidate_score, s.current_score, s.best_score, p.decided.use_gate
        )
        cand = (p.decided.candidate_hash, p.decided.candidate_score)
        if verdict.becomes_current:
            current = cand
        if verdict.becomes_best:
            best = (*cand, e.step)
    elif p.skipped is not None:
        _same("step action", e.action, f"skip_{p.skipped.reason}")
    _same("current after step", (e.current_hash, e.current_score), current)
    _same("best after step", (e.best_hash, e.best_score, e.best_step), best)
    return "step_results"


def _final(s: TrainerState, e: ev.FinalEvaluated, texts: Mapping[str, str]) -> str:
    assert s.dataset is not None
    if e.split == "selection":
        cached = s.selection_cache.get(e.skill_hash)
        if e.reused:
            if cached is None:
                raise Mismatch("final selection reused a score that was never recorded")
            _same("final selection", (e.hard, e.soft, e.n), (cached.hard, cached.soft, cached.n))
        else:
            _check_scores(s, e, "selection", s.dataset.selection)
        _same("promotion", e.promoted, e.skill_hash != s.best_hash and e.gate_score > s.best_score)
    else:
        _check_scores(s, e, "test", s.dataset.test)
        scored = s.scored(eval_key("test", e.skill_hash))
        rows = [(scored[i].task_type, scored[i].hard, scored[i].soft) for i in s.dataset.test]
        _same("test buckets", {k: v.model_dump() for k, v in e.buckets.items()}, buckets(rows))
    return "aggregates"


Check = Callable[[TrainerState, Any, Mapping[str, str]], str]
CHECKS: dict[type[ev.Event], Check] = {
    ev.RunCreated: _run_created,
    ev.RolloutScored: _rollout,
    ev.BaselineEvaluated: _baseline,
    ev.EpochPlanned: _epoch,
    ev.ReflectionPlanned: _reflection_plan,
    ev.PatchesMerged: _merged,
    ev.EditsSelected: _selected,
    ev.CandidateBuilt: _built,
    ev.CandidateEvaluated: _evaluated,
    ev.GateDecided: _gate,
    ev.StepCompleted: _completed,
    ev.FinalEvaluated: _final,
}


def verify_events(
    events: Sequence[tuple[int, ev.Event]], texts: Mapping[str, str]
) -> VerifyOutcome:
    state = TrainerState()
    checks: Counter[str] = Counter()
    for seq, event in events:
        check = CHECKS.get(type(event))
        if check is not None:
            try:
                checks[check(state, event, texts)] += 1
            except Mismatch as exc:
                return VerifyOutcome(dict(checks), (seq, f"{event.TYPE}: {exc}"))
        state = apply(state, event)
    return VerifyOutcome(dict(checks), None)
