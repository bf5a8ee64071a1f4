"""`replay --verify`: fold the events again and re-derive every recorded decision from its
recorded inputs. Two layers: each event must be one the transition table allows at that
point (right stage, step, skill, item), and its content must equal what the pure functions
give on the recorded inputs (plans, parsed replies, merge shape, budgets, candidate texts,
aggregates, verdicts, completions). The first difference is reported with its seq."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from machine import asks, gate_rules, review
from machine import events as ev
from machine import transitions as tr
from machine.budget import exhausted, limits, spent
from machine.candidates import clamp_budget, rewrite_outcome
from machine.canonical import sha256_text
from machine.config import validate_config
from machine.edits import SkillCandidate
from machine.fork import changes, fork_problems
from machine.merge import default_source, merge_plan, payload, payload_field
from machine.plans import epoch_seed, plan_epoch, plan_minibatches, reflection_seed, steps_per_epoch
from machine.prompts import reask_message
from machine.reducer import apply
from machine.replies import CandidateText, ReplyError, candidate_of
from machine.schedule import edit_budget
from machine.scoring import aggregate, buckets, gate_score, is_failure
from machine.skilldoc import (
    add_notes,
    appendix_notes,
    apply_edits,
    count_statuses,
    restore_protected,
    with_appendix,
    with_slow_update,
)
from machine.state import TrainerState, eval_key, unit_key
from machine.steps import post_verdict, step_completion


@dataclass(frozen=True)
class VerifyOutcome:
    checks: dict[str, int]
    problem: tuple[int, str] | None


class Mismatch(Exception):
    pass


Texts = Mapping[str, str]


def _same(what: str, recorded: Any, derived: Any) -> None:
    if recorded != derived:
        raise Mismatch(f"{what}: recorded {recorded!r}, re-derived {derived!r}")


def _blob(texts: Texts, hash_: str, what: str) -> str:
    text = texts.get(hash_)
    if text is None:
        raise Mismatch(f"{what}: blob {hash_[:12]} is missing")
    if sha256_text(text) != hash_:
        raise Mismatch(f"{what}: blob {hash_[:12]} does not hash to its key")
    return text


# -- layer 1: the event is one the transition table allows here ------------------------------

ALLOWED: dict[type[tr.Command], tuple[type[ev.Event], ...]] = {
    tr.LoadDataset: (ev.DatasetLoaded,),
    tr.EvaluateBaseline: (ev.RolloutScored, ev.BaselineEvaluated),
    tr.PlanEpoch: (ev.EpochPlanned,),
    tr.RolloutTrain: (ev.RolloutScored,),
    tr.PlanReflection: (ev.ReflectionPlanned,),
    tr.Reflect: (ev.ReflectionProposed,),
    tr.SkipStep: (ev.StepSkipped,),
    tr.Merge: (ev.PatchesMerged,),
    tr.Select: (ev.EditsSelected,),
    tr.Update: (ev.CandidateBuilt,),
    tr.EvaluateCandidate: (ev.RolloutScored, ev.CandidateEvaluated),
    tr.EvaluateReference: (ev.RolloutScored,),
    tr.Gate: (ev.GateDecided,),
    tr.CompleteStep: (ev.StepCompleted,),
    tr.FlushAppendix: (ev.AppendixFlushed, ev.StepCompleted),
    tr.GateUpdate: (ev.RolloutScored, ev.UpdateGated),
    tr.PlanReview: (ev.ReviewPlanned,),
    tr.ReviewRollout: (ev.RolloutScored,),
    tr.SlowUpdate: (ev.SlowUpdateDone,),
    tr.MetaSkill: (ev.MetaSkillDone,),
    tr.CompleteEpoch: (ev.EpochCompleted,),
    tr.FinalSelection: (ev.RolloutScored, ev.FinalEvaluated),
    tr.FinalTest: (ev.RolloutScored, ev.FinalEvaluated),
    tr.CompleteRun: (ev.RunCompleted,),
}
_EVAL_PHASE = {
    tr.EvaluateBaseline: "selection",
    tr.EvaluateCandidate: "selection",
    tr.EvaluateReference: "selection",
    tr.FinalSelection: "selection",
    tr.FinalTest: "test",
    tr.GateUpdate: "selection",
}


def conforms(state: TrainerState, e: ev.Event) -> None:
    """Raise Mismatch unless `e` is an event the stage graph allows after `state`."""
    if isinstance(e, ev.RunCreated) or state.config is None:
        if state.seq != 0 or not isinstance(e, ev.RunCreated):
            raise Mismatch("a run starts with run.created, once")
        return
    if isinstance(e, ev.SettingsChanged):
        if state.fork_seq is None or state.seq != state.fork_seq:
            raise Mismatch("settings change only in a fork, right after its copied prefix")
        return
    cmd = tr.next_command(state)
    if cmd is None:
        raise Mismatch(f"{e.TYPE} after run.completed")
    if isinstance(e, ev.StageFailed):
        _same("failed stage", (e.stage, e.step), (cmd.stage, int(getattr(cmd, "step", 0))))
        return
    if isinstance(e, ev.BudgetSet):
        return
    if isinstance(e, ev.BudgetExhausted):
        why = exhausted(state)
        if why is None:
            raise Mismatch("budget.exhausted while the budget is not spent")
        cost, tokens = spent(state)
        _same(
            "budget stop",
            (e.stage, e.spent_usd, e.spent_tokens, (e.max_usd, e.max_tokens)),
            (cmd.stage, cost, tokens, limits(state)),
        )
        return
    if not isinstance(e, ALLOWED[type(cmd)]):
        raise Mismatch(f"{e.TYPE} where the stage graph expects stage {cmd.stage}")
    if hasattr(cmd, "step") and hasattr(e, "step") and not isinstance(e, ev.RolloutScored):
        _same("step", e.step, cmd.step)  # type: ignore[attr-defined]
    if isinstance(e, ev.RolloutScored):
        _rollout_conforms(state, cmd, e)
        return
    pending = getattr(cmd, "pending", ())
    if pending and not isinstance(e, ev.ReflectionProposed):
        raise Mismatch(f"{e.TYPE} while {len(pending)} unit(s) of stage {cmd.stage} are unscored")
    match cmd, e:
        case tr.PlanEpoch(), ev.EpochPlanned():
            _same("epoch", e.epoch, cmd.epoch)
        case tr.CompleteEpoch(), ev.EpochCompleted():
            _same("epoch", e.epoch, cmd.epoch)
        case tr.Reflect(), ev.ReflectionProposed():
            if e.minibatch_id not in cmd.pending:
                raise Mismatch(f"minibatch {e.minibatch_id} is not pending")
        case tr.SkipStep(), ev.StepSkipped():
            _same("skip reason", e.reason, cmd.reason)
        case tr.EvaluateCandidate(), ev.CandidateEvaluated():
            _same("evaluated skill", e.skill_hash, cmd.skill_hash)
            _same("cache hit", e.cache_hit, cmd.cache_hit)
        case tr.GateUpdate(), ev.UpdateGated():
            _same(
                "gated skill",
                (e.kind, e.epoch, e.skill_hash, e.cache_hit),
                (cmd.kind, cmd.epoch, cmd.skill_hash, cmd.cache_hit),
            )
        case (
            (tr.PlanReview(), ev.ReviewPlanned())
            | (tr.SlowUpdate(), ev.SlowUpdateDone())
            | (tr.MetaSkill(), ev.MetaSkillDone())
        ):
            _same("epoch", e.epoch, cmd.epoch)  # type: ignore[attr-defined]
        case tr.FinalSelection(), ev.FinalEvaluated():
            _same(
                "final selection",
                (e.split, e.role, e.skill_hash),
                ("selection", "final", cmd.skill_hash),
            )
            _same("reused", e.reused, cmd.reuse)
        case tr.FinalTest(), ev.FinalEvaluated():
            _same("final test", (e.split, e.role, e.skill_hash), ("test", cmd.role, cmd.skill_hash))
            _same("reused", e.reused, cmd.reuse)


def _rollout_conforms(state: TrainerState, cmd: tr.Command, e: ev.RolloutScored) -> None:
    if isinstance(cmd, tr.RolloutTrain):
        assert state.progress is not None
        _same(
            "rollout",
            (e.phase, e.step, e.skill_hash),
            ("train", cmd.step, state.progress.parent_hash),
        )
        if (e.batch, e.item_id) not in cmd.pending:
            raise Mismatch(f"train item {unit_key(e.batch, e.item_id)} is not pending")
        return
    if isinstance(cmd, tr.ReviewRollout):
        _same("rollout", (e.phase, e.step, e.batch), ("review", 0, 0))
        if (e.skill_hash, e.item_id) not in cmd.pending:
            raise Mismatch(f"review item {e.item_id} of {e.skill_hash[:12]} is not pending")
        return
    phase = _EVAL_PHASE[type(cmd)]
    step = cmd.step if isinstance(cmd, tr.EvaluateCandidate | tr.EvaluateReference) else 0
    _same(
        "rollout",
        (e.phase, e.skill_hash, e.step, e.batch),
        (phase, cmd.skill_hash, step, 0),  # type: ignore[attr-defined]
    )
    if e.item_id not in cmd.pending:  # type: ignore[attr-defined]
        raise Mismatch(f"{phase} item {e.item_id} is not pending")
    gated = isinstance(cmd, tr.EvaluateCandidate | tr.GateUpdate)
    if gated and gate_rules.active(state) and e.item_id != cmd.pending[0]:
        # early reject decides on a prefix of the evaluation order: it must be that prefix
        raise Mismatch(f"{phase} item {e.item_id} out of order ({cmd.pending[0]} is next)")


# -- layer 2: the content is what the pure functions give -----------------------------------


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
    _same("n, hard, soft", (e.n, e.hard, e.soft), (n, hard, soft))
    c = s.cfg.evaluation
    _same("gate_score", e.gate_score, gate_score(hard, soft, c.gate_metric, c.gate_mixed_weight))


def _run_created(s: TrainerState, e: ev.RunCreated, texts: Texts) -> str:
    _blob(texts, e.initial_skill_hash, "initial skill")
    return "blobs"


def _dataset(s: TrainerState, e: ev.DatasetLoaded, texts: Texts) -> str:
    t = s.cfg.train
    spe = steps_per_epoch(len(e.train), t.batch_size, t.accumulation)
    _same("steps per epoch, total", (e.steps_per_epoch, e.total_steps), (spe, spe * t.num_epochs))
    c = s.cfg
    _same("environment", e.env, c.env.name)
    limits = {"train": 0, "selection": c.evaluation.sel_env_num, "test": c.evaluation.test_env_num}
    needed = {"train", "selection"} | ({"test"} if c.evaluation.eval_test else set())
    for name, ids in (("train", e.train), ("selection", e.selection), ("test", e.test)):
        if len(set(ids)) != len(ids):
            raise Mismatch(f"duplicate item ids in {name}")
        if name in needed and not ids:
            raise Mismatch(f"the {name} split is empty")
        if limits[name] and len(ids) > limits[name]:
            raise Mismatch(f"{len(ids)} {name} items over the configured {limits[name]}")
    if t.train_size and t.train_size != len(e.train):
        raise Mismatch(f"train.train_size is {t.train_size}, the split has {len(e.train)}")
    return "plans"


def _rollout(s: TrainerState, e: ev.RolloutScored, texts: Texts) -> str:
    _blob(texts, e.trajectory_hash, f"trajectory of {e.item_id}")
    return "blobs"


def _baseline(s: TrainerState, e: ev.BaselineEvaluated, texts: Texts) -> str:
    _same(
        "baseline skill, metric",
        (e.skill_hash, e.metric),
        (s.initial_hash, s.cfg.evaluation.gate_metric),
    )
    assert s.dataset is not None
    _check_scores(s, e, "selection", s.dataset.selection)
    return "aggregates"


def _epoch(s: TrainerState, e: ev.EpochPlanned, texts: Texts) -> str:
    assert s.dataset is not None
    t = s.cfg.train
    seed = epoch_seed(t.seed, e.epoch)
    _same("epoch seed", e.seed, seed)
    _same("first step", e.first_step, (e.epoch - 1) * s.dataset.steps_per_epoch + 1)
    _same("epoch batches", e.steps, plan_epoch(s.dataset.train, seed, t.batch_size, t.accumulation))
    return "plans"


def _reflection_plan(s: TrainerState, e: ev.ReflectionPlanned, texts: Texts) -> str:
    p = s.progress
    assert p is not None
    items = s.step_items(e.step)
    hard, soft, n = aggregate((x.hard, x.soft) for x in items.values())
    _same("rollout aggregate", (e.rollout_hard, e.rollout_soft, e.rollout_n), (hard, soft, n))
    fails = [i for i, x in items.items() if is_failure(x.hard)]
    oks = [i for i, x in items.items() if not is_failure(x.hard)]
    _same("failures, successes", (e.n_failures, e.n_successes), (len(fails), len(oks)))
    _same("plan", (e.epoch, e.skill_hash), (p.epoch, p.parent_hash))
    seed = reflection_seed(s.cfg.train.seed, p.epoch, e.step)
    _same("reflection seed", e.seed, seed)
    g = s.cfg.gradient
    derived = plan_minibatches(fails, oks, seed, g.minibatch_size, g.failure_only)
    _same("minibatches", [(m.id, m.source_type, m.item_ids) for m in e.minibatches], derived)
    return "plans"


def _prompt(
    s: TrainerState,
    texts: Texts,
    call: ev.CallRecord,
    purpose: str,
    user: str,
    what: str,
    history: list[list[str]] | None = None,
) -> None:
    """The recorded prompt is the one these recorded inputs give (its system part is the
    template of the skillopt that wrote it, which the ledger does not hold)."""
    try:
        prompt = json.loads(_blob(texts, call.prompt_hash, f"{what} prompt"))
    except json.JSONDecodeError:
        raise Mismatch(f"{what} prompt is not the JSON skillopt records") from None
    _same(
        f"{what} prompt",
        (prompt.get("purpose"), prompt.get("model"), prompt.get("history", []), prompt.get("user")),
        (purpose, s.cfg.models.optimizer.model, history or [], user),
    )


def _asked(
    s: TrainerState,
    texts: Texts,
    call: ev.CallRecord,
    reask: ev.CallRecord | None,
    purpose: str,
    user: str,
    parse: Callable[[str], Any],
    what: str,
) -> tuple[Any, str]:
    """Re-derive an ask (and its one re-ask): (parsed value or None, error)."""
    _prompt(s, texts, call, purpose, user, what)
    first = _blob(texts, call.response_hash, f"{what} reply")
    try:
        value = parse(first)
    except ReplyError as exc:
        if reask is None:
            raise Mismatch(f"{what}: an unusable reply was not re-asked") from None
        _prompt(
            s,
            texts,
            reask,
            purpose,
            reask_message(str(exc)),
            f"{what} re-ask",
            [["user", user], ["assistant", first]],
        )
        try:
            return parse(_blob(texts, reask.response_hash, f"{what} re-ask reply")), ""
        except ReplyError as again:
            return None, f"{exc}; after a re-ask: {again}"
    if reask is not None:
        raise Mismatch(f"{what}: a usable reply was re-asked")
    return value, ""


def _texts(texts: Texts) -> Callable[[str], str]:
    return lambda h: _blob(texts, h, "blob")


def _sent(
    s: TrainerState, texts: Texts, a: asks.Ask, call: Any, reask: Any, what: str
) -> tuple[Any, str]:
    return _asked(s, texts, call, reask, a.purpose, a.user, a.parse, what)


def _candidates(found: list[CandidateText]) -> list[SkillCandidate]:
    return [candidate_of(c, sha256_text(c.new_skill)) for c in found]


def _proposed(s: TrainerState, e: ev.ReflectionProposed, texts: Texts) -> str:
    p = s.progress
    assert p is not None and p.reflection is not None
    mb = next(m for m in p.reflection.minibatches if m.id == e.minibatch_id)
    _same("minibatch", (e.source_type, e.item_ids), (mb.source_type, mb.item_ids))
    a = asks.reflection(s, mb, _texts(texts))
    r, error = _sent(s, texts, a, e.call, e.reask, "reflection")
    recorded = (
        e.ok,
        e.error,
        e.reasoning,
        e.edits,
        e.truncated,
        e.failure_summary,
        e.success_patterns,
        e.suggestions,
        e.skill_candidates,
        e.appendix_notes,
    )
    if r is None:
        _same("unusable reply", recorded, (False, error, "", [], 0, [], [], [], [], []))
        return "replies"
    derived = (
        True,
        "",
        r.reasoning,
        r.edits,
        r.truncated,
        r.failure_summary,
        r.success_patterns,
        r.suggestions,
        _candidates(r.candidates),
        r.appendix_notes,
    )
    _same("parsed reply", recorded, derived)
    for c in e.skill_candidates:
        _blob(texts, c.skill_hash, "candidate skill")
    return "replies"


def _merged(s: TrainerState, e: ev.PatchesMerged, texts: Texts) -> str:
    p = s.progress
    assert p is not None and p.reflection is not None
    mode = s.cfg.optimizer.skill_update_mode
    key = payload_field(mode)
    ordered = [p.proposals[m.id] for m in p.reflection.minibatches]
    ordered = [x for x in ordered if payload(x, mode)]
    results = {x.minibatch_id: payload(x, mode) for x in ordered}
    calls, root = merge_plan(
        [x.minibatch_id for x in ordered if x.source_type == "failure"],
        [x.minibatch_id for x in ordered if x.source_type == "success"],
        s.cfg.gradient.merge_batch_size,
    )
    _same(
        "merge tree",
        [(n.id, n.level, n.group, n.inputs) for n in e.nodes],
        [(c.id, c.level, c.group, list(c.inputs)) for c in calls],
    )
    for node, call in zip(e.nodes, calls, strict=True):
        if node.call is None:
            raise Mismatch(f"merge node {node.id} has no recorded call")
        patches = [results[i] for i in call.inputs]
        a = asks.merge_node(s, call.group, default_source(call.group), patches, _texts(texts))
        derived, error = _sent(s, texts, a, node.call, node.reask, f"merge node {node.id}")
        got = payload(node, mode)
        if derived is None:
            concat = [x for patch in patches for x in patch]
            _same(
                f"merge node {node.id}",
                (node.ok, node.error, node.fallback, got),
                (False, error, "concatenate", concat),
            )
        else:
            derived = _candidates(derived) if key == "skill_candidates" else derived
            _same(
                f"merge node {node.id}",
                (node.ok, node.error, node.fallback, got),
                (True, "", "", derived),
            )
        results[node.id] = got
    _same("merged patch", (e.root, payload(e, mode)), (root, results[root]))
    return "merges"


def _budget(s: TrainerState, e: ev.EditsSelected, pool: list[Any], texts: Texts) -> int:
    o = s.cfg.optimizer
    _same("budget control", e.control, o.control)
    if o.control == "none":
        _same("no budget", (e.budget, e.schedule_t, e.decision), (len(pool), s.budget_t, None))
        return e.budget
    if o.control == "fixed":
        _same(
            "schedule",
            (e.scheduler, e.schedule_t, e.schedule_total, e.decision),
            (o.lr_scheduler, s.budget_t + 1, s.total_steps, None),
        )
        budget = edit_budget(
            o.lr_scheduler, o.learning_rate, o.min_learning_rate, e.schedule_t, s.total_steps
        )
        _same("budget", e.budget, budget)
        return budget
    d = e.decision
    if d is None:
        raise Mismatch("autonomous edit budget without a recorded decision")
    _same("schedule counter", e.schedule_t, s.budget_t)
    reply, error = _sent(
        s, texts, asks.budget(s, pool, _texts(texts)), d.call, d.reask, "budget decision"
    )
    fields = (d.ok, d.error, d.fallback, d.requested, d.reasoning, d.confidence, d.risk_notes)
    if reply is None:
        _same(
            "unusable budget decision",
            (*fields, e.budget),
            (False, error, "zero", None, "", "", [], 0),
        )
        return 0
    derived = (True, "", "", reply.requested, reply.reasoning, reply.confidence, reply.risk_notes)
    _same("budget decision", fields, derived)
    _same("budget", e.budget, clamp_budget(reply.requested, len(pool)))
    return e.budget


def _selected(s: TrainerState, e: ev.EditsSelected, texts: Texts) -> str:
    p = s.progress
    assert p is not None and p.merged is not None
    mode = s.cfg.optimizer.skill_update_mode
    pool = payload(p.merged, mode)
    _same("n_merged", e.n_merged, len(pool))
    budget = _budget(s, e, pool, texts)
    if budget == 0 or len(pool) <= budget:
        kept = [] if budget == 0 else list(range(len(pool)))
        _same("selection without ranking", (e.kept_indices, e.ranking), (kept, None))
    else:
        rk = e.ranking
        if rk is None:
            raise Mismatch(f"{len(pool)} over a budget of {budget} but no ranking call")
        a = asks.ranking(s, pool, budget, _texts(texts))
        r, error = _sent(s, texts, a, rk.call, rk.reask, "ranking")
        labels = (
            rk.ok,
            rk.error,
            rk.fallback,
            rk.reasoning,
            rk.raw_indices,
            rk.invalid_indices,
            rk.beyond_budget,
        )
        if r is None:
            kept = list(range(budget))
            _same("unusable ranking", labels, (False, error, "first_k", "", [], [], []))
        else:
            kept = r.selected
            _same(
                "ranking",
                labels,
                (True, "", "", r.reasoning, r.raw_indices, r.invalid, r.beyond_budget),
            )
        _same("kept indices", e.kept_indices, kept)
    _same("dropped indices", e.dropped_indices, [i for i in range(len(pool)) if i not in kept])
    chosen = [pool[i] for i in kept]
    rewrite = mode == "rewrite_from_suggestions"
    _same(
        "selected", (e.edits, e.suggestions), ([] if rewrite else chosen, chosen if rewrite else [])
    )
    return "budgets"


def _built(s: TrainerState, e: ev.CandidateBuilt, texts: Texts) -> str:
    p = s.progress
    assert p is not None
    _same("parent", e.parent_hash, p.parent_hash)
    mode = s.cfg.optimizer.skill_update_mode
    _same("update mode", e.mode, mode)
    parent = _blob(texts, e.parent_hash, "parent skill")
    report: list[dict[str, object]] = []
    rewrite = None
    if mode == "patch":
        assert p.selected is not None
        text, report = apply_edits(parent, list(p.selected.edits))
    elif mode == "rewrite_from_suggestions":
        assert p.selected is not None
        rec = e.rewrite
        if rec is None:
            raise Mismatch("a rewrite candidate without its rewrite call")
        a = asks.rewrite(s, list(p.selected.suggestions), _texts(texts))
        reply, error = _sent(s, texts, a, rec.call, rec.reask, "rewrite")
        rewrite, text = rewrite_outcome(reply, error, parent, rec.call, rec.reask)
    else:
        assert p.merged is not None
        text = restore_protected(
            parent, _blob(texts, p.merged.skill_candidates[0].skill_hash, "candidate")
        )
    _same("rewrite", e.rewrite, rewrite)
    _same("candidate hash", e.candidate_hash, sha256_text(text))
    _same("apply report", [r.model_dump() for r in e.report], report)
    _same("applied/skipped", (e.n_applied, e.n_skipped), count_statuses(report))
    _same("length", e.length, len(text))
    _blob(texts, e.candidate_hash, "candidate skill")
    return "candidates"


def _skipped(s: TrainerState, e: ev.StepSkipped, texts: Texts) -> str:
    p = s.progress
    assert p is not None
    _same("skipped step", (e.epoch, e.skill_hash), (p.epoch, s.current_hash))
    return "step_results"


def _gated_scores(s: TrainerState, e: Any, kind: str) -> None:
    """A gated skill's scores: cached, a full pass, or an early stop re-derived from the
    recorded rollouts (its point and bound) with the aggregate of the items it scored."""
    assert s.dataset is not None
    if e.cache_hit:
        cached = s.selection_cache[e.skill_hash]
        _same(
            "cached score",
            (e.hard, e.soft, e.n, e.gate_score),
            (cached.hard, cached.soft, cached.n, cached.gate_score),
        )
        _same("early stop", e.early_stop, None)
        return
    _same("early stop", e.early_stop, gate_rules.early_stop(s, e.skill_hash, kind))
    if e.early_stop is None:
        _check_scores(s, e, "selection", s.dataset.selection)
        return
    hard, soft, n = gate_rules.evaluated_scores(s, e.skill_hash, e.early_stop)
    _same("n, hard, soft", (e.n, e.hard, e.soft), (n, hard, soft))
    c = s.cfg.evaluation
    _same("gate_score", e.gate_score, gate_score(hard, soft, c.gate_metric, c.gate_mixed_weight))


def _evaluated(s: TrainerState, e: ev.CandidateEvaluated, texts: Texts) -> str:
    _gated_scores(s, e, "step")
    _same("metric", e.metric, s.cfg.evaluation.gate_metric)
    return "aggregates"


def _gate(s: TrainerState, e: ev.GateDecided, texts: Texts) -> str:
    p = s.progress
    assert p is not None and p.evaluated is not None and p.candidate is not None
    c = s.cfg.evaluation
    _same(
        "gate inputs",
        (e.candidate_hash, e.candidate_score, e.current_score, e.best_score),
        (p.candidate.candidate_hash, p.evaluated.gate_score, s.current_score, s.best_score),
    )
    _same("gate settings", (e.metric, e.use_gate, e.epoch), (c.gate_metric, c.use_gate, p.epoch))
    verdict, paired = gate_rules.verdict(
        s,
        e.candidate_hash,
        e.candidate_score,
        p.evaluated.early_stop,
        gate_rules.baseline(s, "step"),
    )
    _same("gate verdict", (e.action, e.rule, e.paired), (verdict.action, verdict.rule, paired))
    return "gate_verdicts"


def _completed(s: TrainerState, e: ev.StepCompleted, texts: Texts) -> str:
    _same("step.completed", e, step_completion(s))
    return "step_results"


def _epoch_completed(s: TrainerState, e: ev.EpochCompleted, texts: Texts) -> str:
    _same(
        "epoch end",
        (e.last_step, e.current_hash, e.best_hash, e.best_score),
        (s.steps_completed, s.current_hash, s.best_hash, s.best_score),
    )
    return "step_results"


def _final(s: TrainerState, e: ev.FinalEvaluated, texts: Texts) -> str:
    assert s.dataset is not None
    if e.split == "selection":
        cached = s.selection_cache.get(e.skill_hash)
        if e.reused:
            if cached is None:
                raise Mismatch("final selection reused a score that was never recorded")
            _same(
                "final selection",
                (e.hard, e.soft, e.n, e.gate_score),
                (cached.hard, cached.soft, cached.n, cached.gate_score),
            )
        else:
            _check_scores(s, e, "selection", s.dataset.selection)
        _same("selection buckets", e.buckets, {})
        _same(
            "promotion",
            (e.promoted, e.best_score_before),
            (e.skill_hash != s.best_hash and e.gate_score > s.best_score, s.best_score),
        )
    else:
        _check_scores(s, e, "test", s.dataset.test)
        _same("test promotion fields", (e.promoted, e.best_score_before), (False, None))
        scored = s.scored(eval_key("test", e.skill_hash))
        rows = [(scored[i].task_type, scored[i].hard, scored[i].soft) for i in s.dataset.test]
        _same("test buckets", {k: v.model_dump() for k, v in e.buckets.items()}, buckets(rows))
    return "aggregates"


def _run_completed(s: TrainerState, e: ev.RunCompleted, texts: Texts) -> str:
    t = s.totals()
    _same(
        "run summary",
        (
            e.best_hash,
            e.best_score,
            e.best_step,
            e.final_hash,
            e.steps,
            e.accepts,
            e.rejects,
            e.skips,
        ),
        (
            s.best_hash,
            s.best_score,
            s.best_step,
            s.current_hash,
            t["steps"],
            t["accepts"],
            t["rejects"],
            t["skips"],
        ),
    )
    return "step_results"


def _settings(s: TrainerState, e: ev.SettingsChanged, texts: Texts) -> str:
    _same("changes", e.changes, changes(dict(s.config_data), e.config))
    try:
        config = validate_config(e.config)
    except ValueError as exc:
        raise Mismatch(f"new config does not validate: {exc}") from None
    problems = fork_problems(s, config, e.changes)
    if problems:
        raise Mismatch("; ".join(problems))
    return "forks"


def _flushed(s: TrainerState, e: ev.AppendixFlushed, texts: Texts) -> str:
    p = s.progress
    assert p is not None
    o = s.cfg.optimizer
    parent, _, _ = post_verdict(s)
    notes = tr.appendix_notes_due(s, p)
    _same(
        "appendix inputs",
        (e.epoch, e.parent_hash, e.notes, e.gated),
        (p.epoch, parent, notes, o.appendix_gated),
    )
    text, added, duplicates = add_notes(_blob(texts, parent, "parent skill"), notes)
    _same("appendix notes", (e.added, e.duplicates), (added, duplicates))
    total = appendix_notes(text)
    due = (
        bool(added)
        and bool(o.skill_aware_consolidate_threshold)
        and len(total) > o.skill_aware_consolidate_threshold
    )
    c = e.consolidation
    if due != (c is not None):
        raise Mismatch(f"consolidation {'missing' if due else 'without cause'}")
    if c is not None:
        compacted, error = _sent(
            s, texts, asks.consolidation(total), c.call, c.reask, "consolidation"
        )
        kept = bool(compacted) and len(compacted or []) < len(total)
        _same(
            "consolidation",
            (c.ok, c.error, c.kept, c.before, c.notes),
            (compacted is not None, error, kept, len(total), compacted or []),
        )
        if kept:
            text = with_appendix(text, compacted)
            total = appendix_notes(text)
    _same("appendix result", (e.skill_hash, e.total), (sha256_text(text), len(total)))
    _blob(texts, e.skill_hash, "appendix skill")
    return "appendix"


def _review_planned(s: TrainerState, e: ev.ReviewPlanned, texts: Texts) -> str:
    assert s.dataset is not None
    o = s.cfg.optimizer
    target = min(o.slow_update_samples, len(s.dataset.train))
    seed, sample, scan = review.plan_review(
        s.dataset.train, s.cfg.train.seed, e.epoch, target, o.longitudinal_pair_policy
    )
    _same(
        "review plan",
        (e.prev_hash, e.curr_hash, e.policy, e.target, e.seed, e.sample, e.scan),
        (
            s.epoch_end_hashes.get(e.epoch - 1),
            s.current_hash,
            o.longitudinal_pair_policy,
            target,
            seed,
            sample,
            scan,
        ),
    )
    return "plans"


def _slow_done(s: TrainerState, e: ev.SlowUpdateDone, texts: Texts) -> str:
    _same("slow update parent", e.parent_hash, s.current_hash)
    parent = _blob(texts, e.parent_hash, "parent skill")
    if e.epoch == 1:
        _same(
            "placeholder",
            (e.action, e.skill_hash, e.call),
            ("placeholder", sha256_text(with_slow_update(parent, "")), None),
        )
        return "epoch_memory"
    plan = s.reviews[e.epoch]
    pairs = review.pairs(s, plan)
    _same("comparison pairs", e.pairs, pairs)
    if e.call is None:
        raise Mismatch("slow update without its call")
    reply, error = _sent(
        s, texts, asks.slow_update(s, plan, pairs, _texts(texts)), e.call, e.reask, "slow update"
    )
    if reply is None:
        _same(
            "failed slow update",
            (e.action, e.error, e.skill_hash),
            ("failed", error, e.parent_hash),
        )
        return "epoch_memory"
    reasoning, content = reply
    if not content:
        _same(
            "empty slow update",
            (e.action, e.reasoning, e.skill_hash),
            ("no_content", reasoning, e.parent_hash),
        )
        return "epoch_memory"
    skill_hash = sha256_text(with_slow_update(parent, content))
    gated = s.cfg.optimizer.slow_update_gate_with_selection and skill_hash != e.parent_hash
    _same(
        "slow update",
        (e.action, e.reasoning, e.content_hash, e.skill_hash),
        ("gate" if gated else "force_accept", reasoning, sha256_text(content), skill_hash),
    )
    _blob(texts, e.skill_hash, "slow update skill")
    return "epoch_memory"


def _meta_done(s: TrainerState, e: ev.MetaSkillDone, texts: Texts) -> str:
    plan = s.reviews[e.epoch]
    pairs = review.pairs(s, plan)
    _same("comparison pairs", e.pairs, pairs)
    reply, error = _sent(
        s, texts, asks.meta_skill(s, plan, pairs, _texts(texts)), e.call, e.reask, "meta skill"
    )
    if reply is None:
        _same("failed meta skill", (e.action, e.error), ("failed", error))
        return "epoch_memory"
    reasoning, content = reply
    derived = ("write", sha256_text(content)) if content else ("no_content", "")
    _same(
        "meta skill", (e.action, e.reasoning, e.content_hash), (derived[0], reasoning, derived[1])
    )
    if content:
        _blob(texts, e.content_hash, "meta skill")
    return "epoch_memory"


def _update_gated(s: TrainerState, e: ev.UpdateGated, texts: Texts) -> str:
    _gated_scores(s, e, e.kind)
    base = gate_rules.baseline(s, e.kind)
    _same("gate inputs", (e.current_score, e.best_score), (base.current_score, base.best_score))
    verdict, paired = gate_rules.verdict(s, e.skill_hash, e.gate_score, e.early_stop, base)
    _same("gate verdict", (e.action, e.rule, e.paired), (verdict.action, verdict.rule, paired))
    return "gate_verdicts"


Check = Callable[[TrainerState, Any, Texts], str]
CHECKS: dict[type[ev.Event], Check] = {
    ev.RunCreated: _run_created,
    ev.DatasetLoaded: _dataset,
    ev.RolloutScored: _rollout,
    ev.BaselineEvaluated: _baseline,
    ev.EpochPlanned: _epoch,
    ev.ReflectionPlanned: _reflection_plan,
    ev.ReflectionProposed: _proposed,
    ev.PatchesMerged: _merged,
    ev.EditsSelected: _selected,
    ev.CandidateBuilt: _built,
    ev.StepSkipped: _skipped,
    ev.CandidateEvaluated: _evaluated,
    ev.GateDecided: _gate,
    ev.StepCompleted: _completed,
    ev.EpochCompleted: _epoch_completed,
    ev.FinalEvaluated: _final,
    ev.RunCompleted: _run_completed,
    ev.SettingsChanged: _settings,
    ev.AppendixFlushed: _flushed,
    ev.ReviewPlanned: _review_planned,
    ev.SlowUpdateDone: _slow_done,
    ev.MetaSkillDone: _meta_done,
    ev.UpdateGated: _update_gated,
}


def verify_events(
    events: Sequence[tuple[int, ev.Event]], texts: Texts, run_name: str | None = None
) -> VerifyOutcome:
    """`run_name`: the name the ledger's runs table gives the run, checked against run.created."""
    state = TrainerState()
    checks: Counter[str] = Counter()
    for seq, event in events:
        try:
            if isinstance(event, ev.RunCreated) and run_name is not None:
                _same("run name", event.run_name, run_name)
            conforms(state, event)
            checks["stage_graph"] += 1
            check = CHECKS.get(type(event))
            if check is not None:
                checks[check(state, event, texts)] += 1
            state = apply(state, event)
        except Mismatch as exc:
            return VerifyOutcome(dict(checks), (seq, f"{event.TYPE}: {exc}"))
        except Exception as exc:  # a ledger that breaks the fold is a finding, not a crash
            return VerifyOutcome(
                dict(checks), (seq, f"{event.TYPE}: cannot be folded: {type(exc).__name__}: {exc}")
            )
    return VerifyOutcome(dict(checks), None)
