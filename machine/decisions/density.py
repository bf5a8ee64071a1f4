"""The reference trainer's semantic-density gate bonus (evaluation.use_semantic_density).

A skill's density is the share of its words that are leading words (MUST, ALWAYS, NEVER, ...):
words are the `[a-zA-Z0-9]+` runs of the lower-cased text once its machine-owned regions
(SLOW_UPDATE, APPENDIX) are removed, as the reference removes them (a closed region whole, an
unclosed start marker alone). Every gate score measured on the selection split then adds
weight x density of the skill measured, so the gate favours, among equal scores, the skill
whose instructions are more emphatic: that is the reference's rule, reproduced, not endorsed
(it is off by default there and here).

The counts are integers and the bonus one multiplication, so `replay --verify` re-derives
the recorded numbers exactly from the stored skill text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from skillopt.machine.core.events import DensityBonus
from skillopt.machine.decisions.skilldoc import (
    APPENDIX_END,
    APPENDIX_START,
    SLOW_UPDATE_END,
    SLOW_UPDATE_START,
)

_WORD = re.compile(r"[a-zA-Z0-9]+")


def _without_regions(text: str) -> str:
    for start, end in ((SLOW_UPDATE_START, SLOW_UPDATE_END), (APPENDIX_START, APPENDIX_END)):
        while (i := text.find(start)) != -1:
            j = text.find(end, i)
            if j == -1:  # an unclosed start: the marker goes, what follows is instruction text
                text = text[:i] + text[i + len(start) :]
                break
            text = text[:i] + text[j + len(end) :]
    return text


def counts(text: str, leading_words: Iterable[str]) -> tuple[int, int]:
    """(leading words, words) of a skill's instruction text."""
    if not text.strip():
        return 0, 0
    words = _WORD.findall(_without_regions(text).lower())
    lead = {w.lower() for w in leading_words}
    return sum(1 for w in words if w in lead), len(words)


def bonus(text: str, leading_words: Iterable[str], weight: float) -> DensityBonus:
    leading, words = counts(text, leading_words)
    density = leading / words if words else 0.0
    return DensityBonus(words=words, leading=leading, weight=weight, bonus=weight * density)
