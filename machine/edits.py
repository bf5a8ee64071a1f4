"""The edit: the unit of change an optimizer proposes to a skill document."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from machine.canonical import canonical_json, sha256_text

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
