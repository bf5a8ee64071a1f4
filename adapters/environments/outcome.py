"""What one scorer says of one reply (the task environment's scorers and its judge)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    score: float
    passed: bool
    reason: str  # why not a pass (or what was found), one line
    error: bool = False  # the scorer itself failed on this item
    tokens: tuple[int, int, int] = (0, 0, 0)  # a judge's calls: input, output, cached
