"""`sim`: offline rule-following tasks whose answers need house rules the initial skill lacks.

Each task type has one correct house rule, a plausible decoy rule and a naive answer. A target
that follows the rule the skill states gets it right; the offline target does exactly that,
so the loop can learn something real with no network. The hidden reference (`feedback`)
carries the expected answer and the rule text, as a benchmark's reference solution would.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
WORDS = [
    "apple",
    "pear",
    "fig",
    "kiwi",
    "plum",
    "mango",
    "lime",
    "cherry",
    "grape",
    "melon",
    "peach",
    "date",
    "olive",
    "lemon",
]
NAMES = (
    "ada lovelace|alan turing|grace hopper|edsger dijkstra|barbara liskov|donald knuth|"
    "margaret hamilton|john backus|frances allen|ken thompson|radia perlman|tony hoare"
)


@dataclass(frozen=True)
class Variant:
    text: str
    pattern: str
    answer: Callable[[Mapping[str, Any]], str]


@dataclass(frozen=True)
class TaskType:
    name: str
    prompt: Callable[[Mapping[str, Any]], str]
    rule: Variant
    decoy: Variant
    naive: Callable[[Mapping[str, Any]], str]
    generate: Callable[[random.Random], dict[str, Any]]


def _date(rng: random.Random) -> dict[str, Any]:
    return {"y": rng.randint(1990, 2030), "m": rng.randint(1, 12), "d": rng.randint(1, 28)}


def _money(rng: random.Random) -> dict[str, Any]:
    return {"amount": rng.randint(1000, 999999) / 100}


def _name(rng: random.Random) -> dict[str, Any]:
    return {"name": rng.choice(NAMES.split("|"))}


def _words(rng: random.Random) -> dict[str, Any]:
    while True:
        words = rng.sample(WORDS, 4)
        if words not in (sorted(words), sorted(words, key=lambda w: (len(w), w))):
            return {"words": words}


def _miles(rng: random.Random) -> dict[str, Any]:
    return {"miles": rng.randint(2, 400)}


def _ratio(rng: random.Random) -> dict[str, Any]:
    return {"ratio": rng.randint(1, 999) / 1000}


TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType(
            "date",
            lambda d: f"Format this date: {d['d']} {MONTHS[d['m'] - 1]} {d['y']}",
            Variant(
                "Write every date in ISO 8601 form YYYY-MM-DD (e.g. 2024-03-05).",
                r"YYYY-MM-DD",
                lambda d: f"{d['y']:04d}-{d['m']:02d}-{d['d']:02d}",
            ),
            Variant(
                "Write every date as DD/MM/YYYY (e.g. 05/03/2024).",
                r"DD/MM/YYYY",
                lambda d: f"{d['d']:02d}/{d['m']:02d}/{d['y']}",
            ),
            lambda d: f"{MONTHS[d['m'] - 1]} {d['d']}, {d['y']}",
            _date,
        ),
        TaskType(
            "currency",
            lambda d: f"Format this amount of money: {d['amount']} US dollars",
            Variant(
                "Write money with a $ sign, thousands separators and exactly two decimals "
                "(e.g. $1,234.50).",
                r"exactly two decimals",
                lambda d: f"${d['amount']:,.2f}",
            ),
            Variant(
                "Write money as a whole number of dollars followed by USD (e.g. 1235 USD).",
                r"followed by USD",
                lambda d: f"{round(d['amount'])} USD",
            ),
            lambda d: f"{d['amount']} dollars",
            _money,
        ),
        TaskType(
            "name_case",
            lambda d: f"Format this person's name: {d['name']}",
            Variant(
                "Write person names in Title Case, capitalising each word (e.g. Ada Lovelace).",
                r"Title Case",
                lambda d: d["name"].title(),
            ),
            Variant(
                "Write person names in upper case (e.g. ADA LOVELACE).",
                r"upper case",
                lambda d: d["name"].upper(),
            ),
            lambda d: d["name"],
            _name,
        ),
        TaskType(
            "ordering",
            lambda d: f"Format this list: {', '.join(d['words'])}",
            Variant(
                "Write lists sorted alphabetically, separated by a comma and a space "
                "(e.g. apple, fig, pear).",
                r"sorted alphabetically",
                lambda d: ", ".join(sorted(d["words"])),
            ),
            Variant(
                "Write lists sorted by word length, shortest first, separated by commas.",
                r"sorted by word length",
                lambda d: ", ".join(sorted(d["words"], key=lambda w: (len(w), w))),
            ),
            lambda d: " / ".join(d["words"]),
            _words,
        ),
        TaskType(
            "distance",
            lambda d: f"Format this distance: {d['miles']} miles",
            Variant(
                "Write distances in kilometres with one decimal and the unit km "
                "(1 mile = 1.609 km; e.g. 12.9 km).",
                r"kilometres with one decimal",
                lambda d: f"{d['miles'] * 1.609:.1f} km",
            ),
            Variant(
                "Write distances in metres, rounded to the nearest metre (e.g. 12875 m).",
                r"in metres",
                lambda d: f"{round(d['miles'] * 1609)} m",
            ),
            lambda d: f"{d['miles']} miles",
            _miles,
        ),
        TaskType(
            "percent",
            lambda d: f"Format this ratio: {d['ratio']}",
            Variant(
                "Write ratios as percentages with one decimal and a % sign (e.g. 42.5%).",
                r"percentages with one decimal",
                lambda d: f"{d['ratio'] * 100:.1f}%",
            ),
            Variant(
                "Write ratios as fractions over 1000 (e.g. 425/1000).",
                r"fractions over 1000",
                lambda d: f"{round(d['ratio'] * 1000)}/1000",
            ),
            lambda d: str(d["ratio"]),
            _ratio,
        ),
    )
}

SYSTEM_SUFFIX = "\n\nAnswer with the formatted value only."
DEFAULTS: dict[str, Any] = {
    "train": 36,
    "selection": 24,
    "test": 30,
    "data_seed": 7,
    "task_types": "",
}


class SimEnvironment:
    name = "sim"

    def __init__(self, options: Mapping[str, Any], source: DataSource | None = None) -> None:
        if source is not None:
            raise AdapterError(
                "env.split_dir/env.data_path: the sim environment generates its items"
            )
        opts = check_options("env.options", options, DEFAULTS)
        for split in ("train", "selection", "test"):
            if opts[split] < 0:
                raise_value(f"env.options.{split}", opts[split])
        wanted = [t.strip() for t in str(opts["task_types"]).split(",") if t.strip()]
        unknown = [t for t in wanted if t not in TASK_TYPES]
        if unknown:
            raise_value("env.options.task_types", ",".join(unknown), known=", ".join(TASK_TYPES))
        self._types = wanted or list(TASK_TYPES)
        self._sizes = {s: int(opts[s]) for s in ("train", "selection", "test")}
        self._seed = int(opts["data_seed"])

    def task_types(self) -> list[str]:
        return list(self._types)

    def items(self, split: Split) -> list[Item]:
        # Each split has its own generator, so resizing one split leaves the others unchanged.
        rng = random.Random(f"sim/{self._seed}/{split}")
        out: list[Item] = []
        for i in range(self._sizes[split]):
            task = TASK_TYPES[self._types[i % len(self._types)]]
            data = task.generate(rng)
            out.append(Item(f"{split[:3]}-{i:03d}-{task.name}", task.name, task.prompt(data), data))
        return out

    @staticmethod
    def target_hints(item: Item) -> dict[str, Any]:
        """What the offline target reads: the answer under each stated rule, and without one."""
        task = TASK_TYPES[item.task_type]
        variants = [
            {"pattern": v.pattern, "answer": v.answer(item.data)} for v in (task.rule, task.decoy)
        ]
        return {"variants": variants, "default": task.naive(item.data)}

    def rollout(self, item: Item, skill: str, model: ChatModel) -> RolloutResult:
        task = TASK_TYPES[item.task_type]
        expected = task.rule.answer(item.data)
        request = ChatRequest(
            role="target",
            system=skill + SYSTEM_SUFFIX,
            messages=(Message("user", item.prompt),),
            purpose="rollout",
            hints=self.target_hints(item),
            max_tokens=64,
        )
        reply = model.complete(request)
        got = reply.text.strip()
        hard = 1.0 if got == expected else 0.0
        soft = round(difflib.SequenceMatcher(None, got, expected).ratio(), 6)
        reason = "" if hard else f"{item.task_type}: got {got!r}, expected {expected!r}"
        trajectory = f"USER: {item.prompt}\nASSISTANT: {got}\nEXPECTED: {expected}"
        feedback = {
            "expected": expected,
            "got": got,
            "rule": task.rule.text,
            "rule_pattern": task.rule.pattern,
            "decoy": task.decoy.text,
            "decoy_pattern": task.decoy.pattern,
        }
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


def raise_value(key: str, value: Any, known: str = "") -> None:
    hint = f" (known: {known})" if known else ""
    raise AdapterError(f"{key}: bad value {value!r}{hint}")
