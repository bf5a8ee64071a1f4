"""Turning optimizer replies into values, or into an explicit reason why not.

Extraction order: a fenced ```json block, the whole reply, then a single balanced top-level
object. Anything ambiguous is an error the caller records; nothing is guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from skillopt.machine.core.edits import Edit, SkillCandidate, Suggestion

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.DOTALL)


class ReplyError(ValueError):
    """A reply we cannot use; the message says why, in one line."""


def _balanced_objects(text: str) -> list[str]:
    """Top-level {...} spans, string-aware."""
    spans: list[str] = []
    depth, start, in_string, escaped = 0, -1, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"' and depth > 0:
            in_string = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def extract_json_object(text: str) -> dict[str, Any]:
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    candidates.append(text.strip())
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    objects = _balanced_objects(text)
    if len(objects) != 1:
        raise ReplyError(
            "no JSON object in reply" if not objects else f"{len(objects)} JSON objects in reply"
        )
    try:
        value = json.loads(objects[0])
    except json.JSONDecodeError as exc:
        raise ReplyError(f"malformed JSON object: {exc.msg} at char {exc.pos}") from None
    if not isinstance(value, dict):
        raise ReplyError("reply JSON is not an object")
    return value


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _RawEdit(_Loose):
    op: str
    target: str = ""
    content: str = ""
    support_count: int | None = None
    source_type: str | None = None


class _RawSuggestion(_Loose):
    type: str = "clarify"
    title: str = ""
    motivation: str = ""
    instruction: str
    priority_hint: str = "medium"
    support_count: int | None = None
    source_type: str | None = None


class _RawCandidate(_Loose):
    title: str = ""
    change_summary: list[Any] = Field(default_factory=list)
    new_skill: str = ""
    support_count: int | None = None
    source_type: str | None = None


class _Patch(_Loose):
    reasoning: str = ""
    edits: list[_RawEdit] = Field(default_factory=list)
    revise_suggestions: list[_RawSuggestion] = Field(default_factory=list)
    skill_candidates: list[_RawCandidate] = Field(default_factory=list)


class _Reflection(_Loose):
    batch_size: int | None = None
    failure_summary: list[dict[str, Any]] = Field(default_factory=list)
    success_patterns: list[Any] = Field(default_factory=list)
    patch: _Patch
    appendix_notes: list[Any] = Field(default_factory=list)


class _PatchEdits(_Loose):
    reasoning: str = ""
    edits: list[_RawEdit] = Field(default_factory=list)


class _PatchSuggestions(_Loose):
    reasoning: str = ""
    revise_suggestions: list[_RawSuggestion] = Field(default_factory=list)


class _PatchCandidates(_Loose):
    reasoning: str = ""
    skill_candidates: list[_RawCandidate] = Field(default_factory=list)


_MODE_PATCH: dict[str, type[_Loose]] = {
    "patch": _PatchEdits,
    "rewrite_from_suggestions": _PatchSuggestions,
    "full_rewrite_minibatch": _PatchCandidates,
}


@cache
def reflection_schema(mode: str, notes: bool) -> dict[str, Any]:
    """The reflection reply's schema for the active update mode only, with `appendix_notes`
    only under skill-aware reflection (config_version >= 4): the schema of all three modes is
    about half of a small reflect call's input. Parsing is unchanged (parse_reflection reads
    every mode's fields), so this is what is asked, not what is accepted."""
    fields: dict[str, Any] = {
        "batch_size": (int | None, None),
        "failure_summary": (list[dict[str, Any]], Field(default_factory=list)),
        "success_patterns": (list[Any], Field(default_factory=list)),
        "patch": (_MODE_PATCH[mode], ...),
    }
    if notes:
        fields["appendix_notes"] = (list[Any], Field(default_factory=list))
    return create_model("Reflection", __base__=_Loose, **fields).model_json_schema()


class _Merge(_Loose):
    reasoning: str = ""
    edits: list[_RawEdit]


class _MergeSuggestions(_Loose):
    reasoning: str = ""
    revise_suggestions: list[_RawSuggestion]


class _MergeCandidates(_Loose):
    reasoning: str = ""
    skill_candidates: list[_RawCandidate]


class _Ranking(_Loose):
    reasoning: str = ""
    selected_indices: list[Any]


def _validate(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(reply)"
        raise ReplyError(f"reply field {where}: {err['msg']}") from None


def _edit(raw: _RawEdit, source_type: str, support: int) -> Edit:
    source = raw.source_type if raw.source_type in ("failure", "success") else source_type
    count = (
        raw.support_count if raw.support_count is not None and raw.support_count >= 0 else support
    )
    return Edit(
        op=raw.op.strip().lower(),
        target=raw.target,
        content=raw.content,
        support_count=count,
        source_type=source,  # type: ignore[arg-type]
    )


def _suggestion(raw: _RawSuggestion, source_type: str, support: int) -> Suggestion:
    source = raw.source_type if raw.source_type in ("failure", "success") else source_type
    count = (
        raw.support_count if raw.support_count is not None and raw.support_count >= 0 else support
    )
    return Suggestion(
        type=raw.type,
        title=raw.title,
        motivation=raw.motivation,
        instruction=raw.instruction,
        priority_hint=raw.priority_hint,
        support_count=count,
        source_type=source,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class CandidateText:
    """A whole candidate skill as the optimizer wrote it (the handler stores it as a blob)."""

    title: str
    change_summary: list[str]
    new_skill: str
    support_count: int
    source_type: str


def _candidates(raws: list[_RawCandidate], source_type: str, support: int) -> list[CandidateText]:
    out = []
    for raw in raws:
        if not raw.new_skill.strip():
            continue  # the first non-empty new_skill wins, as in the reference
        source = (
            raw.source_type if raw.source_type in ("failure", "success", "mixed") else source_type
        )
        count = (
            raw.support_count
            if raw.support_count is not None and raw.support_count >= 0
            else support
        )
        out.append(
            CandidateText(
                raw.title, [str(c) for c in raw.change_summary], raw.new_skill, count, source
            )
        )
    return out


@dataclass(frozen=True)
class Reflection:
    reasoning: str
    edits: list[Edit]
    truncated: int
    failure_summary: list[dict[str, Any]] = field(default_factory=list)
    success_patterns: list[str] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)
    candidates: list[CandidateText] = field(default_factory=list)
    appendix_notes: list[str] = field(default_factory=list)


def parse_reflection(
    text: str,
    source_type: str,
    n_items: int,
    budget: int,
    mode: str = "patch",
    notes: bool = False,
) -> Reflection:
    """An analyst reply; edits (or suggestions) beyond the budget are cut and counted, never
    silently. `mode` says which payload counts; `notes`: skill-aware appendix notes are read."""
    parsed: _Reflection = _validate(_Reflection, extract_json_object(text))
    support = max(n_items, 1)
    edits: list[Edit] = []
    suggestions: list[Suggestion] = []
    candidates: list[CandidateText] = []
    truncated = 0
    if mode == "patch":
        edits = [_edit(raw, source_type, support) for raw in parsed.patch.edits]
        truncated, edits = max(0, len(edits) - budget), edits[:budget]
    elif mode == "rewrite_from_suggestions":
        suggestions = [
            _suggestion(r, source_type, support) for r in parsed.patch.revise_suggestions
        ]
        truncated, suggestions = max(0, len(suggestions) - budget), suggestions[:budget]
    else:
        candidates = _candidates(parsed.patch.skill_candidates, source_type, support)[:1]
    lapses = [str(n).strip() for n in parsed.appendix_notes if str(n).strip()] if notes else []
    return Reflection(
        reasoning=parsed.patch.reasoning,
        edits=edits,
        truncated=truncated,
        failure_summary=parsed.failure_summary,
        success_patterns=[str(p) for p in parsed.success_patterns],
        suggestions=suggestions,
        candidates=candidates,
        appendix_notes=lapses,
    )


def parse_merge(text: str, default_source: str) -> tuple[str, list[Edit]]:
    parsed: _Merge = _validate(_Merge, extract_json_object(text))
    return parsed.reasoning, [_edit(raw, default_source, 1) for raw in parsed.edits]


def parse_merge_suggestions(text: str, default_source: str) -> list[Suggestion]:
    parsed: _MergeSuggestions = _validate(_MergeSuggestions, extract_json_object(text))
    return [_suggestion(raw, default_source, 1) for raw in parsed.revise_suggestions]


def parse_merge_candidates(text: str, default_source: str) -> list[CandidateText]:
    parsed: _MergeCandidates = _validate(_MergeCandidates, extract_json_object(text))
    found = _candidates(parsed.skill_candidates, default_source, 1)[:1]
    if not found:
        raise ReplyError("reply has no skill candidate with a non-empty new_skill")
    return found


@dataclass(frozen=True)
class Ranking:
    reasoning: str
    raw_indices: list[Any]
    selected: list[int]
    invalid: list[Any]
    beyond_budget: list[int] = field(default_factory=list)


def parse_ranking(text: str, n_edits: int, budget: int) -> Ranking:
    """Indices in priority order. Out-of-range, duplicate or non-integer ones are `invalid`;
    valid ones past the budget are `beyond_budget`."""
    parsed: _Ranking = _validate(_Ranking, extract_json_object(text))
    selected: list[int] = []
    invalid: list[Any] = []
    beyond: list[int] = []
    for raw in parsed.selected_indices:
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int)
            or not 0 <= raw < n_edits
            or raw in selected
            or raw in beyond
        ):
            invalid.append(raw)
        elif len(selected) >= budget:
            beyond.append(raw)
        else:
            selected.append(raw)
    if not selected and n_edits and budget:
        raise ReplyError("ranking selected no valid index")
    return Ranking(parsed.reasoning, list(parsed.selected_indices), selected, invalid, beyond)


# What optimizer requests declare as their output schema (structured output where supported).
# REFLECTION_SCHEMA covers all three update modes (config_version <= 3); reflection_schema
# the active mode's alone.
REFLECTION_SCHEMA: dict[str, Any] = _Reflection.model_json_schema()
MERGE_SCHEMA: dict[str, Any] = _Merge.model_json_schema()
MERGE_SUGGESTIONS_SCHEMA: dict[str, Any] = _MergeSuggestions.model_json_schema()
MERGE_CANDIDATES_SCHEMA: dict[str, Any] = _MergeCandidates.model_json_schema()
RANKING_SCHEMA: dict[str, Any] = _Ranking.model_json_schema()


def candidate_of(c: CandidateText, skill_hash: str) -> SkillCandidate:
    return SkillCandidate(
        title=c.title,
        change_summary=c.change_summary,
        skill_hash=skill_hash,
        support_count=c.support_count,
        source_type=c.source_type,  # type: ignore[arg-type]
    )
