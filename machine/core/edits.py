"""The edit: the unit of change an optimizer proposes to a skill document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from skillopt.machine.core.canonical import canonical_json, sha256_text

EDIT_OPS = ("append", "insert_after", "replace", "delete")
SourceType = Literal["failure", "success"]


class Edit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    op: str
    target: str = ""
    content: str = ""
    support_count: int = Field(default=1, ge=0)
    source_type: SourceType = "failure"

    @property
    def id(self) -> str:
        """Content-derived id: the same edit proposed twice has the same id."""
        return "e" + sha256_text(canonical_json([self.op, self.target, self.content]))[:10]

    def summary(self, width: int = 80) -> str:
        text = self.content.replace("\n", " ")
        head = f"[{self.op}]"
        if self.target:
            head += f" @{self.target[:30]!r}"
        return f"{head} {text[:width]}"


class Suggestion(BaseModel):
    """A revise suggestion (skill_update_mode rewrite_from_suggestions): what to change, in words;
    one rewrite call turns the selected ones into the new skill."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = "clarify"
    title: str = ""
    motivation: str = ""
    instruction: str
    priority_hint: str = "medium"
    support_count: int = Field(default=1, ge=0)
    source_type: SourceType = "failure"

    def summary(self, width: int = 80) -> str:
        return f"[{self.type}] {self.title}: {self.instruction.replace(chr(10), ' ')}"[:width]


class SkillCandidate(BaseModel):
    """A whole candidate skill (skill_update_mode full_rewrite_minibatch); its text is a blob."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = ""
    change_summary: list[str] = Field(default_factory=list)
    skill_hash: str
    support_count: int = Field(default=1, ge=0)
    source_type: Literal["failure", "success", "mixed"] = "failure"
