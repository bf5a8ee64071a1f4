"""`task`: your own task. A prompt goes in, text comes out, your scorers score it.

Data: `env.data_path` (one JSONL, JSON array, `{"data": [...]}` or CSV file, split by
`env.split_ratio` or `env.split_sizes`) or `env.split_dir` (the reference layout). The task's
own settings are `env.options`:

- `fields`: which of the file's columns is the `input` (required), the `expected` answer, the
  `id` (when absent, a stable id is derived from the row's content) and the `task_type`
  (default: "task"). Every other column stays available to the prompt and to scorers.
- `prompt`: the user message, with `{column}` placeholders (default: the input alone). The skill
  is the system prompt, exactly: nothing is appended to it.
- `scorers`: what scores a reply (adapters/environments/scorers.py); `pass_threshold` decides
  `hard` when no scorer is `required`. Each scorer's result and reason go into the trajectory,
  the first failure's into `fail_reason` ("scorer: reason"), so the optimizer reads *why*.
- `max_tokens` of a reply (default 1024).

A `judge` scorer (adapters/environments/judge.py) makes `models.judge` a role of the rollouts:
each reply is graded by that model against the scorer's rubric, journaled like every call.

The offline model can play the target: a row's optional `offline` column holds its hints
(`{"default": answer_without_the_rule, "variants": [{"pattern": regex_in_skill, "answer":
...}]}`, as the protocol describes) and its `rule` / `rule_pattern` feedback for the offline
optimizer. Without it, the offline target answers the expected value. Real models ignore both.
"""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Mapping
from typing import Any

from skillopt.adapters.environments import scorers as sc
from skillopt.adapters.environments.splits import SPLITS, read_source
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
    "fields": {},
    "prompt": "",
    "scorers": [],
    "pass_threshold": 1.0,
    "max_tokens": 1024,
}
FIELD_ROLES = ("input", "expected", "id", "task_type")
RULE_KEYS = ("rule", "rule_pattern", "decoy", "decoy_pattern")


def derived_id(row: Mapping[str, Any]) -> str:
    """A stable id from a row's content (its canonical JSON), for files without ids."""
    text = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "row-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _placeholders(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise AdapterError(f"env.options.prompt: {exc}") from None


class TaskEnvironment:
    name = "task"

    def __init__(self, options: Mapping[str, Any], source: DataSource | None = None) -> None:
        self.opts = check_options("env.options", options, DEFAULTS)
        fields = self.opts["fields"]
        unknown = sorted(set(fields) - set(FIELD_ROLES))
        if unknown:
            raise AdapterError(
                f"env.options.fields.{unknown[0]}: unknown role (known: {', '.join(FIELD_ROLES)})"
            )
        self.fields = {role: str(fields.get(role, role)) for role in FIELD_ROLES}
        self.template = str(self.opts["prompt"]) or "{" + self.fields["input"] + "}"
        self.needed = _placeholders(self.template)
        specs = self.opts["scorers"]
        if not isinstance(specs, list) or not specs:
            raise AdapterError("env.options.scorers: list at least one scorer (e.g. type: exact)")
        self.scorers = [sc.build(spec, k) for k, spec in enumerate(specs)]
        # a judge scorer makes the judge a role of this environment's rollouts
        judges = [s.judge for s in self.scorers if s.judge is not None]
        self.roles: tuple[str, ...] = ("target", "judge") if judges else ("target",)
        self.rubric_fields = [f for j in judges for f in j.fields if f != "expected"]
        if self.opts["max_tokens"] < 1:
            raise AdapterError(
                f"env.options.max_tokens: must be >= 1, got {self.opts['max_tokens']}"
            )
        if source is None:
            raise AdapterError("env.data_path or env.split_dir: the task environment needs data")
        data = read_source(source, self._check_row, self._with_id)
        self._items = {split: [self._item(r) for r in data.rows[split]] for split in SPLITS}
        self._manifest = dict(data.manifest)

    def _with_id(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row's id: its mapped id column, else one derived from its content."""
        column = self.fields["id"]
        if row.get(column) not in (None, ""):
            return {**row, "id": row[column]}
        return {**row, "id": derived_id(row)}

    def _check_row(self, row: Mapping[str, Any]) -> None:
        for name in [self.fields["input"], *self.needed, *self.rubric_fields]:
            if name not in row:
                raise AdapterError(f"missing field {name!r} (map columns with env.options.fields)")
        if "offline" in row and not isinstance(row["offline"], Mapping):
            raise AdapterError("'offline' must be an object of hints")

    def _item(self, row: dict[str, Any]) -> Item:
        values = {k: ("" if v is None else v) for k, v in row.items()}
        prompt = self.template.format_map(values)
        task_type = str(row.get(self.fields["task_type"]) or "task")
        data = {"row": row, "expected": row.get(self.fields["expected"])}
        return Item(str(row["id"]), task_type, prompt, data)

    def items(self, split: Split) -> list[Item]:
        return list(self._items[split])

    def task_types(self) -> list[str]:
        return list(dict.fromkeys(i.task_type for s in SPLITS for i in self._items[s]))

    def split_manifest(self) -> dict[str, Any]:
        return dict(self._manifest)

    def _row(self, item: Item) -> dict[str, Any]:
        """What scorers see: the row, with the mapped answer as `expected`."""
        return {**item.data["row"], "expected": item.data["expected"]}

    def rollout(
        self, item: Item, skill: str, model: ChatModel, judge: ChatModel | None = None
    ) -> RolloutResult:
        offline = item.data["row"].get("offline") or {}
        expected = item.data["expected"]
        hints = {
            "default": offline.get("default", "" if expected is None else str(expected)),
            "variants": list(offline.get("variants", [])),
        }
        request = ChatRequest(
            role="target",
            system=skill,
            messages=(Message("user", item.prompt),),
            purpose="rollout",
            hints=hints,
            max_tokens=int(self.opts["max_tokens"]),
        )
        reply = model.complete(request)
        got = reply.text.strip()
        row = self._row(item)
        outcomes = [scorer(got, row, judge) for scorer in self.scorers]
        hard, soft = sc.combine(self.scorers, outcomes, float(self.opts["pass_threshold"]))
        lines = [
            f"  {s.name} ({s.kind}{', required' if s.required else ''}, weight {s.weight:g}): "
            f"{o.score:.3f}{' pass' if o.passed else ''}{' - ' + o.reason if o.reason else ''}"
            for s, o in zip(self.scorers, outcomes, strict=True)
        ]
        failed = [(s, o) for s, o in zip(self.scorers, outcomes, strict=True) if not o.passed]
        # a scorer's own error first (the item could not be scored), then a required miss
        first = next((f for f in failed if f[1].error), None)
        first = first or next((f for f in failed if f[0].required), None)
        first = first or (failed[0] if failed else None)
        reason = "" if hard else (f"{first[0].name}: {first[1].reason}" if first else "low_score")
        trajectory = (
            f"USER: {item.prompt}\nASSISTANT: {got}\n"
            + (f"EXPECTED: {expected}\n" if expected is not None else "")
            + f"SCORES (hard {hard:g}, soft {soft:.3f}):\n"
            + "\n".join(lines)
        )
        feedback: dict[str, Any] = {"got": got}
        if expected is not None:
            feedback["expected"] = expected
        feedback.update({k: offline[k] for k in RULE_KEYS if k in offline})
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
            tuple(sum(o.tokens[k] for o in outcomes) for k in range(3)),  # type: ignore[arg-type]
        )
