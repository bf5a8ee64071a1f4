"""`acronym`: abbreviate a phrase; the house format is capital letters without dots.

An environment is any class built as `Factory(options, source)` with `name`, `items(split)`,
`task_types()` and `rollout(item, skill, model)`; see skillopt.adapters.protocol (its docstrings state the whole contract).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skillopt.adapters.environments.splits import load_source
from skillopt.adapters.protocol import (
    AdapterError,
    ChatModel,
    ChatRequest,
    DataSource,
    Item,
    Message,
    RolloutResult,
    Split,
    check_options,
)

PHRASES = [
    "portable network graphics",
    "central processing unit",
    "random access memory",
    "hypertext markup language",
    "structured query language",
    "application programming interface",
    "graphical user interface",
    "domain name system",
    "universal serial bus",
    "read only memory",
    "local area network",
    "frequently asked questions",
    "liquid crystal display",
    "global positioning system",
    "light emitting diode",
    "personal identification number",
    "unidentified flying object",
    "do it yourself",
    "estimated time of arrival",
    "very important person",
]
RULE = "Write acronyms in capital letters, without dots (e.g. PNG)."
RULE_PATTERN = "capital letters"
DECOY = "Write acronyms in lower case with dots (e.g. p.n.g.)."
DECOY_PATTERN = "lower case with dots"
DEFAULTS: dict[str, Any] = {"train": 8, "selection": 6, "test": 6}


def initials(phrase: str) -> str:
    return "".join(word[0] for word in phrase.split())


class AcronymEnvironment:
    name = "acronym"

    def __init__(self, options: Mapping[str, Any], source: DataSource | None = None) -> None:
        opts = check_options("env.options", options, DEFAULTS)
        if source is not None:  # env.split_dir / env.data_path: rows {id, phrase}
            rows = load_source(source, _check_row)
            self._items = {s: [_item(r["id"], r["phrase"]) for r in rows[s]] for s in rows}
            return
        if any(opts[s] < 0 for s in DEFAULTS) or sum(opts[s] for s in DEFAULTS) > len(PHRASES):
            raise AdapterError(f"env.options: train + selection + test must be 0..{len(PHRASES)}")
        self._items, start = {}, 0
        for split in ("train", "selection", "test"):
            chosen = PHRASES[start : start + opts[split]]
            self._items[split] = [_item(f"{split[:3]}-{i:02d}", p) for i, p in enumerate(chosen)]
            start += opts[split]

    def items(self, split: Split) -> list[Item]:
        return list(self._items[split])

    def task_types(self) -> list[str]:
        return ["acronym"]

    def rollout(self, item: Item, skill: str, model: ChatModel) -> RolloutResult:
        letters = initials(item.data["phrase"])
        expected = letters.upper()
        # `hints` let skillopt's offline model play the target; real models ignore them.
        hints = {
            "default": letters,
            "variants": [
                {"pattern": RULE_PATTERN, "answer": expected},
                {"pattern": DECOY_PATTERN, "answer": "".join(f"{c}." for c in letters)},
            ],
        }
        request = ChatRequest(
            role="target",
            system=skill + "\n\nAnswer with the acronym only.",
            messages=(Message("user", item.prompt),),
            purpose="rollout",
            hints=hints,
            max_tokens=16,
        )
        reply = model.complete(request)
        got = reply.text.strip()
        if got == expected:
            hard, soft, reason = 1.0, 1.0, ""
        elif got.replace(".", "").upper() == expected:
            hard, soft = 0.0, 0.5
            reason = f"wrong_format: got {got!r}, expected {expected!r}"
        else:
            hard, soft, reason = 0.0, 0.0, f"wrong_answer: got {got!r}, expected {expected!r}"
        feedback = {
            "expected": expected,
            "got": got,
            "rule": RULE,
            "rule_pattern": RULE_PATTERN,
            "decoy": DECOY,
            "decoy_pattern": DECOY_PATTERN,
        }
        return RolloutResult(
            hard=hard,
            soft=soft,
            fail_reason=reason,
            task_type=item.task_type,
            trajectory=f"USER: {item.prompt}\nASSISTANT: {got}\nEXPECTED: {expected}",
            feedback=feedback,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
        )


def _item(item_id: str, phrase: str) -> Item:
    return Item(item_id, "acronym", f"Abbreviate: {phrase}", {"phrase": phrase})


def _check_row(row: dict[str, Any]) -> None:
    """Raise AdapterError for a bad row; skillopt adds the file and the row to the message."""
    phrase = row.get("phrase")
    if not isinstance(phrase, str) or not phrase.split():
        raise AdapterError("missing required field 'phrase' (a non-empty string)")
