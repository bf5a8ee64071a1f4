"""Replies of the optimizer's single-shot calls: the autonomous edit budget, the rewrite of
rewrite_from_suggestions, the slow update, the meta skill and the appendix consolidation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from skillopt.machine.optimizer.replies import ReplyError, _validate, extract_json_object


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Budget(_Loose):
    learning_rate: int
    reasoning: str = ""
    confidence: Any = ""  # a word ("high") or a number: kept as its text
    risk_notes: list[Any] = Field(default_factory=list)


class _Rewrite(_Loose):
    reasoning: str = ""
    change_summary: list[Any] = Field(default_factory=list)
    new_skill: str


class _SlowUpdate(_Loose):
    reasoning: str = ""
    slow_update_content: str


class _MetaSkill(_Loose):
    reasoning: str = ""
    meta_skill_content: str


class _Consolidation(_Loose):
    appendix_notes: list[Any]


@dataclass(frozen=True)
class BudgetReply:
    requested: int
    reasoning: str
    confidence: str
    risk_notes: list[str]


def parse_budget(text: str) -> BudgetReply:
    parsed: _Budget = _validate(_Budget, extract_json_object(text))
    if parsed.learning_rate < 0:
        raise ReplyError(f"learning_rate must be >= 0, got {parsed.learning_rate}")
    notes = [str(n) for n in parsed.risk_notes]
    return BudgetReply(parsed.learning_rate, parsed.reasoning, str(parsed.confidence), notes)


@dataclass(frozen=True)
class RewriteReply:
    reasoning: str
    change_summary: list[str]
    new_skill: str


def parse_rewrite(text: str) -> RewriteReply:
    parsed: _Rewrite = _validate(_Rewrite, extract_json_object(text))
    if not parsed.new_skill.strip():
        raise ReplyError("new_skill is empty")
    summary = [str(c) for c in parsed.change_summary]
    return RewriteReply(parsed.reasoning, summary, parsed.new_skill)


def parse_slow_update(text: str) -> tuple[str, str]:
    """(reasoning, guidance); empty guidance is a valid answer (nothing written)."""
    parsed: _SlowUpdate = _validate(_SlowUpdate, extract_json_object(text))
    return parsed.reasoning, parsed.slow_update_content.strip()


def parse_meta_skill(text: str) -> tuple[str, str]:
    parsed: _MetaSkill = _validate(_MetaSkill, extract_json_object(text))
    return parsed.reasoning, parsed.meta_skill_content.strip()


def parse_consolidation(text: str) -> list[str]:
    parsed: _Consolidation = _validate(_Consolidation, extract_json_object(text))
    return [str(n).strip() for n in parsed.appendix_notes if str(n).strip()]


BUDGET_SCHEMA: dict[str, Any] = _Budget.model_json_schema()
REWRITE_SCHEMA: dict[str, Any] = _Rewrite.model_json_schema()
SLOW_UPDATE_SCHEMA: dict[str, Any] = _SlowUpdate.model_json_schema()
META_SKILL_SCHEMA: dict[str, Any] = _MetaSkill.model_json_schema()
CONSOLIDATION_SCHEMA: dict[str, Any] = _Consolidation.model_json_schema()
