"""Optimizer replies of the issue-3 mechanisms: machine/optimizer/replies.py's mode-aware reflection and
merges, and machine/optimizer/replies_memory.py's single-shot calls (budget, rewrite, slow update, meta
skill, consolidation). Reference: trainer-semantics.md sections 2.4 and 2.8."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skillopt.machine.optimizer.replies import (
    ReplyError,
    parse_merge_candidates,
    parse_merge_suggestions,
    parse_reflection,
)
from skillopt.machine.optimizer.replies_memory import (
    parse_budget,
    parse_consolidation,
    parse_meta_skill,
    parse_rewrite,
    parse_slow_update,
)


def reply(obj: dict[str, Any]) -> str:
    """As a model sends it: prose around a fenced JSON block."""
    return f"Here you go.\n```json\n{json.dumps(obj)}\n```\nDone."


EDITS = [{"op": "append", "content": f"rule {i}"} for i in range(4)]
SUGGESTIONS = [
    {"type": "add_rule", "title": f"t{i}", "instruction": f"do {i}", "support_count": i}
    for i in range(3)
]
CANDIDATES = [
    {"title": "empty", "new_skill": "   "},
    {"title": "first", "change_summary": ["a", 2], "new_skill": "# Skill A\n"},
    {"title": "second", "new_skill": "# Skill B\n"},
]
PAYLOAD: dict[str, Any] = {
    "batch_size": 3,
    "failure_summary": [{"failure_type": "format", "count": 2, "description": "d"}],
    "patch": {
        "reasoning": "because",
        "edits": EDITS,
        "revise_suggestions": SUGGESTIONS,
        "skill_candidates": CANDIDATES,
    },
    "appendix_notes": ["  Re-read the rule. ", "", "   ", 7],
}


# --- parse_reflection, by mode ----------------------------------------------------------------


def test_patch_mode_truncates_edits_to_the_budget_and_counts_them() -> None:
    r = parse_reflection(reply(PAYLOAD), "failure", n_items=3, budget=3)
    assert [e.content for e in r.edits] == ["rule 0", "rule 1", "rule 2"]
    assert r.truncated == 1
    assert all(e.support_count == 3 and e.source_type == "failure" for e in r.edits)
    # The other modes' payloads are not read in patch mode.
    assert (r.suggestions, r.candidates) == ([], [])
    assert r.reasoning == "because"
    assert r.failure_summary == PAYLOAD["failure_summary"]


def test_patch_mode_within_budget_truncates_nothing() -> None:
    r = parse_reflection(reply(PAYLOAD), "success", n_items=0, budget=10)
    assert (len(r.edits), r.truncated) == (4, 0)
    assert {(e.support_count, e.source_type) for e in r.edits} == {(1, "success")}


def test_rewrite_mode_truncates_suggestions_and_ignores_edits() -> None:
    r = parse_reflection(reply(PAYLOAD), "failure", 5, budget=2, mode="rewrite_from_suggestions")
    assert r.edits == []
    assert [s.instruction for s in r.suggestions] == ["do 0", "do 1"]
    assert r.truncated == 1
    # support_count from the reply when given (0 included), the batch size otherwise.
    assert [s.support_count for s in r.suggestions] == [0, 1]
    no_count = {**PAYLOAD, "patch": {"revise_suggestions": [{"instruction": "x"}]}}
    (s,) = parse_reflection(
        reply(no_count), "failure", 5, 2, "rewrite_from_suggestions"
    ).suggestions
    assert (s.support_count, s.type, s.priority_hint) == (5, "clarify", "medium")


def test_full_rewrite_keeps_the_first_non_empty_skill_only_and_has_no_budget() -> None:
    r = parse_reflection(reply(PAYLOAD), "failure", 2, budget=0, mode="full_rewrite_minibatch")
    (c,) = r.candidates
    assert (c.title, c.new_skill, c.change_summary, c.support_count, c.source_type) == (
        "first",
        "# Skill A\n",
        ["a", "2"],
        2,
        "failure",
    )
    assert (r.edits, r.suggestions, r.truncated) == ([], [], 0)


def test_full_rewrite_without_any_skill_has_no_candidate() -> None:
    obj = {"patch": {"skill_candidates": [{"title": "x", "new_skill": ""}]}}
    r = parse_reflection(reply(obj), "failure", 2, 4, "full_rewrite_minibatch")
    assert r.candidates == []


def test_appendix_notes_are_read_only_when_asked() -> None:
    assert parse_reflection(reply(PAYLOAD), "failure", 3, 4).appendix_notes == []
    r = parse_reflection(reply(PAYLOAD), "failure", 3, 4, notes=True)
    assert r.appendix_notes == ["Re-read the rule.", "7"]


def test_reflection_without_patch_is_an_error() -> None:
    with pytest.raises(ReplyError, match=r"reply field patch: Field required"):
        parse_reflection(reply({"appendix_notes": ["x"]}), "failure", 3, 4, notes=True)


# --- merges ---------------------------------------------------------------------------------


def test_merge_suggestions() -> None:
    obj = {"reasoning": "r", "revise_suggestions": [*SUGGESTIONS, {"instruction": "y"}]}
    merged = parse_merge_suggestions(reply(obj), "success")
    assert [s.instruction for s in merged] == ["do 0", "do 1", "do 2", "y"]
    assert merged[3].support_count == 1 and merged[3].source_type == "success"
    assert parse_merge_suggestions(reply({"revise_suggestions": []}), "failure") == []
    with pytest.raises(ReplyError, match="revise_suggestions"):
        parse_merge_suggestions(reply({"reasoning": "r"}), "failure")
    with pytest.raises(ReplyError, match="instruction"):
        parse_merge_suggestions(reply({"revise_suggestions": [{"title": "t"}]}), "failure")


def test_merge_candidates_picks_the_first_non_empty_skill() -> None:
    (c,) = parse_merge_candidates(reply({"skill_candidates": CANDIDATES}), "mixed")
    assert (c.title, c.new_skill, c.source_type, c.support_count) == (
        "first",
        "# Skill A\n",
        "mixed",
        1,
    )


@pytest.mark.parametrize(
    "obj",
    [{"skill_candidates": []}, {"skill_candidates": [{"title": "t", "new_skill": " \n"}]}],
)
def test_merge_candidates_without_a_candidate_is_an_error(obj: dict[str, Any]) -> None:
    with pytest.raises(ReplyError, match="no skill candidate with a non-empty new_skill"):
        parse_merge_candidates(reply(obj), "failure")


def test_merge_candidates_missing_key_is_an_error() -> None:
    with pytest.raises(ReplyError, match="skill_candidates"):
        parse_merge_candidates(reply({"reasoning": "r"}), "failure")


# --- replies_memory -------------------------------------------------------------------------


def test_budget_reply() -> None:
    obj = {"learning_rate": 3, "reasoning": "r", "confidence": "high", "risk_notes": ["a", 2]}
    b = parse_budget(reply(obj))
    assert (b.requested, b.reasoning, b.confidence, b.risk_notes) == (3, "r", "high", ["a", "2"])
    zero = parse_budget(reply({"learning_rate": 0}))
    assert (zero.requested, zero.reasoning, zero.confidence, zero.risk_notes) == (0, "", "", [])


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"learning_rate": -1}, "learning_rate must be >= 0, got -1"),
        ({"reasoning": "r"}, "reply field learning_rate: Field required"),
        ({"learning_rate": "many"}, "reply field learning_rate"),
        ({"learning_rate": 2.5}, "reply field learning_rate"),
    ],
)
def test_budget_reply_errors(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(ReplyError, match=message):
        parse_budget(reply(obj))


def test_rewrite_reply() -> None:
    r = parse_rewrite(reply({"reasoning": "r", "change_summary": ["x", 1], "new_skill": "# S\n"}))
    assert (r.reasoning, r.change_summary, r.new_skill) == ("r", ["x", "1"], "# S\n")


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"new_skill": "  \n "}, "new_skill is empty"),
        ({"reasoning": "r"}, "reply field new_skill: Field required"),
    ],
)
def test_rewrite_reply_errors(obj: dict[str, Any], message: str) -> None:
    with pytest.raises(ReplyError, match=message):
        parse_rewrite(reply(obj))


def test_slow_update_and_meta_skill_allow_empty_content() -> None:
    assert parse_slow_update(reply({"slow_update_content": "  "})) == ("", "")
    assert parse_slow_update(reply({"reasoning": "r", "slow_update_content": " g \n"})) == (
        "r",
        "g",
    )
    assert parse_meta_skill(reply({"meta_skill_content": ""})) == ("", "")
    assert parse_meta_skill(reply({"reasoning": "r", "meta_skill_content": "\n- m\n"})) == (
        "r",
        "- m",
    )
    with pytest.raises(ReplyError, match="slow_update_content"):
        parse_slow_update(reply({"reasoning": "r"}))
    with pytest.raises(ReplyError, match="meta_skill_content"):
        parse_meta_skill(reply({"reasoning": "r"}))


def test_consolidation_strips_blank_notes() -> None:
    obj = {"appendix_notes": ["  one ", "", "  ", "two", 3]}
    assert parse_consolidation(reply(obj)) == ["one", "two", "3"]
    assert parse_consolidation(reply({"appendix_notes": []})) == []
    with pytest.raises(ReplyError, match="appendix_notes"):
        parse_consolidation(reply({"notes": ["x"]}))
