"""`qa`: question answering, scored by exact match and token F1 after normalization.

Items are rows `{id, question, answer | answers[], context?, task_type?, house?}` read through a
`DataSource` (`env.split_dir` or `env.data_path`, see adapters/environments/splits.py), or the set shipped in
`skills/qa/data` when the config names no data.

Scores (the usual extractive-QA metrics): both sides are normalized (lower case, punctuation
removed, the articles a/an/the dropped, whitespace collapsed); `hard` = 1 when the reply equals
an accepted answer, `soft` = the best token F1 over the accepted answers. `fail_reason` starts
with a stable category: `no_answer:` (nothing left after normalization), `wrong_format:` (the
words of an answer, in another form or order), `partial_answer:` (some words right),
`wrong_answer:` (none).

`house` (optional, per row) describes the house answer format of the row's task type, so that
the offline model can play target and optimizer: `rule` (the format the answer follows, stated
as a skill would state it), `rule_pattern` (a regular expression that finds the rule in a
skill), `decoy` / `decoy_pattern` (a plausible wrong format), `plain` (the answer a target gives
when the skill states no format) and `decoy_answer` (the answer under the decoy). The offline
target answers per the rule the skill states last; the feedback carries the rule for the
offline optimizer's reflection. Real models ignore all of it: they read the skill.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from typing import Any

from skillopt.adapters.environments.splits import SPLITS, SplitData, read_source, read_split_dir
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

DEFAULTS: dict[str, Any] = {
    "instruction": "Answer with the answer only.",  # appended to the skill ("" for none)
    "max_tokens": 256,
}
SHIPPED = "shipped:skills/qa/data"
HOUSE_KEYS = ("rule", "rule_pattern", "decoy", "decoy_pattern", "plain", "decoy_answer")
RULE_KEYS = HOUSE_KEYS[:4]
DEFAULT_TASK_TYPE = "qa"

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCT = set(string.punctuation)


# -- scoring -----------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Lower case, punctuation removed (ASCII and Unicode), articles dropped, spaces collapsed."""
    text = text.lower()
    text = "".join(
        ch for ch in text if ch not in _ASCII_PUNCT and not unicodedata.category(ch).startswith("P")
    )
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """Token F1 of the normalized texts (1.0 when both are empty)."""
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, answers: list[str]) -> bool:
    got = normalize(prediction)
    return any(got == normalize(a) for a in answers)


def score(prediction: str, answers: list[str]) -> tuple[float, float]:
    """(hard, soft): exact match and the best token F1 over the accepted answers."""
    hard = 1.0 if exact_match(prediction, answers) else 0.0
    soft = 1.0 if hard else round(max(token_f1(prediction, a) for a in answers), 6)
    return hard, soft


def fail_reason(got: str, answers: list[str], task_type: str, soft: float) -> str:
    """The failure category first, so reflection groups failures by it."""
    expected = answers[0]
    if not normalize(got):
        return f"no_answer: {task_type}: no words in the reply, expected {expected!r}"
    if soft >= 1.0:
        return f"wrong_format: {task_type}: got {got!r}, expected {expected!r} (same words)"
    if soft > 0:
        return f"partial_answer: {task_type}: got {got!r}, expected {expected!r} (F1 {soft:.2f})"
    return f"wrong_answer: {task_type}: got {got!r}, expected {expected!r}"


# -- rows --------------------------------------------------------------------------------------


def _text(value: Any, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise AdapterError(f"{key!r} must be a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise AdapterError(f"{key!r} is empty")
    return text


def row_answers(row: Mapping[str, Any]) -> list[str]:
    """`answer` and/or `answers` (a non-empty list), `answer` first, duplicates dropped."""
    if "answer" not in row and "answers" not in row:
        raise AdapterError("missing required field 'answer' (or 'answers')")
    out: list[str] = []
    if "answer" in row:
        out.append(_text(row["answer"], "answer"))
    if "answers" in row:
        values = row["answers"]
        if not isinstance(values, list) or not values:
            raise AdapterError("'answers' must be a non-empty list of strings")
        out += [_text(v, f"answers[{i}]") for i, v in enumerate(values)]
    for answer in out:
        if not normalize(answer):
            raise AdapterError(f"answer {answer!r} has no words after normalization")
    return list(dict.fromkeys(out))


class RowCheck:
    """Checks one row's fields (splits.py names the file and row); remembers each task type's
    house rule so that rows of one type cannot disagree about it."""

    def __init__(self) -> None:
        self.rules: dict[str, tuple[str, ...]] = {}

    def __call__(self, row: dict[str, Any]) -> None:
        if "question" not in row:
            raise AdapterError("missing required field 'question'")
        _text(row["question"], "question")
        row_answers(row)
        if row.get("context") is not None and not isinstance(row["context"], str):
            raise AdapterError("'context' must be a string")
        task_type = _task_type(row)
        if not isinstance(task_type, str) or not task_type.strip():
            raise AdapterError("'task_type' must be a non-empty string")
        if row.get("house") is not None:
            self._house(row["house"], task_type)

    def _house(self, house: Any, task_type: str) -> None:
        if not isinstance(house, dict):
            raise AdapterError("'house' must be an object")
        for key in house:
            if key not in HOUSE_KEYS:
                raise AdapterError(f"house.{key}: unknown key (known: {', '.join(HOUSE_KEYS)})")
        for key in HOUSE_KEYS:
            if key not in house:
                raise AdapterError(f"house: missing required field {key!r}")
            _text(house[key], f"house.{key}")
        for kind in ("rule", "decoy"):
            other = "decoy" if kind == "rule" else "rule"
            try:
                pattern = re.compile(house[f"{kind}_pattern"])
            except re.error as exc:
                raise AdapterError(
                    f"house.{kind}_pattern: bad regular expression ({exc})"
                ) from None
            if not pattern.search(house[kind]):
                raise AdapterError(f"house.{kind}_pattern does not match house.{kind}")
            if pattern.search(house[other]):
                raise AdapterError(f"house.{kind}_pattern also matches house.{other}")
        rule = tuple(house[k] for k in RULE_KEYS)
        if self.rules.setdefault(task_type, rule) != rule:
            raise AdapterError(
                f"house: task_type {task_type!r} has another rule in an earlier row "
                "(one house rule per task type)"
            )


def make_item(row: Mapping[str, Any]) -> Item:
    question = str(row["question"])
    context = row.get("context")
    data: dict[str, Any] = {"question": question, "answers": row_answers(row)}
    if context:
        data["context"] = context
    if row.get("house") is not None:
        data["house"] = {k: str(row["house"][k]) for k in HOUSE_KEYS}
    prompt = f"Context: {context}\n\nQuestion: {question}" if context else f"Question: {question}"
    return Item(str(row["id"]), str(_task_type(row)), prompt, data)


def _task_type(row: Mapping[str, Any]) -> Any:
    value = row.get("task_type")
    return DEFAULT_TASK_TYPE if value is None else value


# -- the environment ---------------------------------------------------------------------------


def shipped_data() -> SplitData:
    """The QA set of this project, in the reference split layout under skills/qa/data."""
    root = resources.files("skillopt.skills").joinpath("qa", "data")
    return read_split_dir(root, RowCheck(), label=SHIPPED)


class QAEnvironment:
    name = "qa"

    def __init__(self, options: Mapping[str, Any], source: DataSource | None = None) -> None:
        self.opts = check_options("env.options", options, DEFAULTS)
        if self.opts["max_tokens"] < 1:
            raise AdapterError(
                f"env.options.max_tokens: must be >= 1, got {self.opts['max_tokens']}"
            )
        data = shipped_data() if source is None else read_source(source, RowCheck())
        self._items = {split: [make_item(r) for r in data.rows[split]] for split in SPLITS}
        self._manifest = dict(data.manifest)

    def items(self, split: Split) -> list[Item]:
        return list(self._items[split])

    def task_types(self) -> list[str]:
        return list(dict.fromkeys(i.task_type for s in SPLITS for i in self._items[s]))

    def split_manifest(self) -> dict[str, Any]:
        """Where the items came from, recorded in the ledger with `dataset.loaded`."""
        return dict(self._manifest)

    @staticmethod
    def target_hints(item: Item) -> dict[str, Any]:
        """What the offline target reads: the answer under each stated format, and without one.
        A row without `house` is answered correctly (the offline target knows the facts)."""
        answers = item.data["answers"]
        house = item.data.get("house")
        if house is None:
            return {"default": answers[0], "variants": []}
        return {
            "default": house["plain"],
            "variants": [
                {"pattern": house["rule_pattern"], "answer": answers[0]},
                {"pattern": house["decoy_pattern"], "answer": house["decoy_answer"]},
            ],
        }

    def rollout(self, item: Item, skill: str, model: ChatModel) -> RolloutResult:
        answers: list[str] = list(item.data["answers"])
        instruction = self.opts["instruction"]
        request = ChatRequest(
            role="target",
            system=f"{skill}\n\n{instruction}" if instruction else skill,
            messages=(Message("user", item.prompt),),
            purpose="rollout",
            hints=self.target_hints(item),
            max_tokens=int(self.opts["max_tokens"]),
        )
        reply = model.complete(request)
        got = reply.text.strip()
        hard, soft = score(got, answers)
        reason = "" if hard else fail_reason(got, answers, item.task_type, soft)
        trajectory = (
            f"USER: {item.prompt}\nASSISTANT: {got}\nEXPECTED: {' | '.join(answers)}\n"
            f"SCORE: exact_match={hard:g} f1={soft:.3f}"
        )
        feedback: dict[str, Any] = {"expected": answers[0], "got": got}
        if len(answers) > 1:
            feedback["answers"] = answers
        house = item.data.get("house")
        if house is not None:
            feedback.update({k: house[k] for k in RULE_KEYS})
        return RolloutResult(
            hard,
            soft,
            reason,
            item.task_type,
            trajectory,
            feedback,
            reply.input_tokens,
            reply.output_tokens,
            reply.cache_read_tokens,
        )
