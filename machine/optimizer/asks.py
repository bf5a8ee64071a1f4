"""What each optimizer call asks, as a pure function of the state: purpose, templates (the
system part, read by the shell), user message, hints for the offline model, schema and parser.

Handlers send these; `replay --verify` rebuilds the same asks from the recorded events and
checks the recorded prompts and parsed replies against them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from skillopt.machine.core import events as ev
from skillopt.machine.core.edits import Edit, SkillCandidate, Suggestion
from skillopt.machine.core.state import TrainerState, eval_key
from skillopt.machine.decisions.skilldoc import SLOW_UPDATE_END, SLOW_UPDATE_START, region_body
from skillopt.machine.optimizer.prompts import (
    SKILL_HEAD,
    budget_user_message,
    consolidation_user_message,
    edit_hints,
    merge_user_message,
    meta_skill_user_message,
    ranking_user_message,
    reflection_user_message,
    rewrite_user_message,
    skill_prefix,
    slow_update_user_message,
    trajectory_block,
)
from skillopt.machine.optimizer.replies import (
    MERGE_CANDIDATES_SCHEMA,
    MERGE_SCHEMA,
    MERGE_SUGGESTIONS_SCHEMA,
    RANKING_SCHEMA,
    REFLECTION_SCHEMA,
    parse_merge,
    parse_merge_candidates,
    parse_merge_suggestions,
    parse_ranking,
    parse_reflection,
    reflection_schema,
)
from skillopt.machine.optimizer.replies_memory import (
    BUDGET_SCHEMA,
    CONSOLIDATION_SCHEMA,
    META_SKILL_SCHEMA,
    REWRITE_SCHEMA,
    SLOW_UPDATE_SCHEMA,
    parse_budget,
    parse_consolidation,
    parse_meta_skill,
    parse_rewrite,
    parse_slow_update,
)
from skillopt.machine.optimizer.step_buffer import buffer_text

Texts = Callable[[str], str]
MODE_UNIT = {"patch": "edits", "rewrite_from_suggestions": "suggestions"}
MODE_SUFFIX = {
    "rewrite_from_suggestions": ("reflect_mode_rewrite",),
    "full_rewrite_minibatch": ("reflect_mode_full_rewrite",),
}


@dataclass(frozen=True)
class Ask:
    purpose: str
    templates: tuple[str, ...]
    user: str
    schema: Mapping[str, Any]
    parse: Callable[[str], Any]
    hints: Mapping[str, Any] = field(default_factory=dict)
    # Leading characters of `user` that repeat across the step's calls (the current skill):
    # sent as a cache hint, never part of the recorded prompt.
    cache_prefix: int = 0


def _cached(ask: Ask, skill: str, heading: str = SKILL_HEAD) -> Ask:
    return replace(ask, cache_prefix=skill_prefix(ask.user, skill, heading))


def meta_text(state: TrainerState, epoch: int, text: Texts) -> str:
    h = state.meta_skill_hash(epoch)
    return text(h) if h else ""


def reflection(state: TrainerState, mb: ev.Minibatch, text: Texts) -> Ask:
    p = state.progress
    assert p is not None
    o = state.cfg.optimizer
    mode, budget = o.skill_update_mode, o.learning_rate
    skill = text(p.parent_hash)
    scores = state.step_items(p.step)
    rows = [scores[i] for i in mb.item_ids]
    blocks = [
        trajectory_block(k, r.item_id, r.task_type, r.fail_reason, text(r.trajectory_hash))
        for k, r in enumerate(rows, start=1)
    ]
    aware = o.use_skill_aware_reflection
    templates = (f"reflect_{mb.source_type}", *MODE_SUFFIX.get(mode, ()))
    templates += ("reflect_skill_aware",) if aware else ()
    user = reflection_user_message(
        skill,
        budget,
        blocks,
        buffer_text(state, p.step),
        meta_text(state, p.epoch, text),
        MODE_UNIT.get(mode, "skill"),
    )
    hints = {
        "source_type": mb.source_type,
        "budget": budget,
        "skill": skill,
        "mode": mode,
        "skill_aware": aware,
        "items": [
            {"item_id": r.item_id, "task_type": r.task_type, "feedback": dict(r.feedback)}
            for r in rows
        ],
    }
    schema = reflection_schema(mode, aware) if state.cfg.lean_optimizer_input else None
    ask = Ask(
        "reflect",
        templates,
        user,
        schema or REFLECTION_SCHEMA,
        lambda t: parse_reflection(t, mb.source_type, len(rows), budget, mode, notes=aware),
        hints,
    )
    return _cached(ask, skill)


def candidate_view(c: SkillCandidate, text: Texts) -> dict[str, Any]:
    """A skill candidate as the merge prompt shows it: with its whole text."""
    row = c.model_dump(mode="json")
    row.pop("skill_hash")
    return {**row, "new_skill": text(c.skill_hash)}


def merge_node(
    state: TrainerState,
    group: str,
    default_source: str,
    patches: Sequence[Sequence[Edit | Suggestion | SkillCandidate]],
    text: Texts,
) -> Ask:
    p = state.progress
    assert p is not None
    mode = state.cfg.optimizer.skill_update_mode
    skill = text(p.parent_hash)
    meta = meta_text(state, p.epoch, text)
    if mode == "full_rewrite_minibatch":
        views = [[candidate_view(c, text) for c in patch] for patch in patches]  # type: ignore[arg-type]
        user = merge_user_message(skill, group, views, meta)
        hints = {"group": group, "kind": "candidates", "patches": views}
        parse: Callable[[str], Any] = lambda t: parse_merge_candidates(t, default_source)  # noqa: E731
        ask = Ask("merge", ("merge_candidates",), user, MERGE_CANDIDATES_SCHEMA, parse, hints)
        return _cached(ask, skill)
    user = merge_user_message(skill, group, patches, meta)  # type: ignore[arg-type]
    hints = {"group": group, "patches": [edit_hints(pt) for pt in patches]}  # type: ignore[arg-type]
    if mode == "rewrite_from_suggestions":
        hints["kind"] = "suggestions"
        parse = lambda t: parse_merge_suggestions(t, default_source)  # noqa: E731
        ask = Ask("merge", ("merge_suggestions",), user, MERGE_SUGGESTIONS_SCHEMA, parse, hints)
        return _cached(ask, skill)
    parse = lambda t: parse_merge(t, default_source)[1]  # noqa: E731
    return _cached(Ask("merge", ("merge",), user, MERGE_SCHEMA, parse, hints), skill)


def ranking(
    state: TrainerState, pool: Sequence[Edit | Suggestion], budget: int, text: Texts
) -> Ask:
    p = state.progress
    assert p is not None
    skill = text(p.parent_hash)
    user = ranking_user_message(skill, pool, budget, meta_text(state, p.epoch, text))
    hints = {"edits": edit_hints(pool), "budget": budget}  # type: ignore[arg-type]
    ask = Ask(
        "rank",
        ("rank",),
        user,
        RANKING_SCHEMA,
        lambda t: parse_ranking(t, len(pool), budget),
        hints,
    )
    return _cached(ask, skill)


def budget(state: TrainerState, pool: Sequence[Edit | Suggestion], text: Texts) -> Ask:
    p = state.progress
    assert p is not None and p.reflection is not None
    r = p.reflection
    user = budget_user_message(
        text(p.parent_hash),
        pool,
        (r.rollout_n, r.rollout_hard, r.rollout_soft),
        buffer_text(state, p.step),
        meta_text(state, p.epoch, text),
    )
    hints = {"available": len(pool), "failure_rate": 1.0 - r.rollout_hard}
    ask = Ask("budget", ("budget",), user, BUDGET_SCHEMA, parse_budget, hints)
    return _cached(ask, text(p.parent_hash))


def rewrite(state: TrainerState, suggestions: Sequence[Suggestion], text: Texts) -> Ask:
    p = state.progress
    assert p is not None
    skill = text(p.parent_hash)
    user = rewrite_user_message(skill, suggestions, buffer_text(state, p.step))
    hints = {"skill": skill, "suggestions": [s.model_dump(mode="json") for s in suggestions]}
    return _cached(Ask("rewrite", ("rewrite",), user, REWRITE_SCHEMA, parse_rewrite, hints), skill)


def pair_rows(
    state: TrainerState, plan: ev.ReviewPlanned, pairs: Sequence[ev.Pair], text: Texts
) -> list[tuple[str, str, str, str]]:
    prev = state.scored(eval_key("review", plan.prev_hash))
    curr = state.scored(eval_key("review", plan.curr_hash))
    return [
        (
            x.id,
            x.category,
            text(prev[x.id].trajectory_hash),
            text(curr[x.id].trajectory_hash),
        )
        for x in pairs
    ]


def _pair_hints(rows: Sequence[tuple[str, str, str, str]]) -> list[dict[str, str]]:
    return [{"id": r[0], "category": r[1]} for r in rows]


def slow_update(
    state: TrainerState, plan: ev.ReviewPlanned, pairs: Sequence[ev.Pair], text: Texts
) -> Ask:
    skill = text(state.current_hash)
    guidance = region_body(skill, SLOW_UPDATE_START, SLOW_UPDATE_END) or ""
    rows = pair_rows(state, plan, pairs, text)
    user = slow_update_user_message(text(plan.prev_hash), skill, guidance, rows)
    hints = {"pairs": _pair_hints(rows), "guidance": guidance}
    ask = Ask("slow_update", ("slow_update",), user, SLOW_UPDATE_SCHEMA, parse_slow_update, hints)
    return _cached(ask, skill)


def meta_skill(
    state: TrainerState, plan: ev.ReviewPlanned, pairs: Sequence[ev.Pair], text: Texts
) -> Ask:
    rows = pair_rows(state, plan, pairs, text)
    memory = meta_text(state, plan.epoch, text)
    user = meta_skill_user_message(text(plan.prev_hash), text(plan.curr_hash), memory, rows)
    hints = {"pairs": _pair_hints(rows), "memory": memory, "epoch": plan.epoch}
    ask = Ask("meta_skill", ("meta_skill",), user, META_SKILL_SCHEMA, parse_meta_skill, hints)
    return _cached(ask, text(plan.curr_hash), "## This epoch's last skill\n\n")


def consolidation(notes: Sequence[str]) -> Ask:
    user = consolidation_user_message(notes)
    return Ask(
        "consolidate",
        ("appendix_consolidate",),
        user,
        CONSOLIDATION_SCHEMA,
        parse_consolidation,
        {"notes": list(notes)},
    )
