"""Scorers of the `task` environment: each turns one reply into a score in [0, 1], whether it
passes, and a one-line reason the optimizer reads.

A spec is a mapping with a `type` and its settings, plus `weight` (default 1), `required`
(default false) and `pass_at` (the score a pass needs, default 1). Specs are checked when the
environment is built: an unknown type, a bad regex, a python scorer that does not import is an
AdapterError naming `env.options.scorers[i] (type)`. At scoring time a scorer that raises is a scorer
*error* on that item (a failure whose reason says so), never a crash and never a pass.

Types: `exact`, `contains`, `contains_all`, `contains_any`, `regex`, `numeric`, `json`,
`length`, `python`, and `judge` (an LLM grades the reply against a rubric: judge.py). Values a scorer compares with are literals in the spec or a row field
(`field: answer`); the row's mapped `expected` is the default where one is needed.
"""

from __future__ import annotations

import importlib
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skillopt.adapters.environments.outcome import Outcome
from skillopt.adapters.protocol import AdapterError, ChatModel

if TYPE_CHECKING:
    from skillopt.adapters.environments.judge import Judge

Row = Mapping[str, Any]


@dataclass(frozen=True)
class Scorer:
    name: str  # "exact", or the spec's `name`
    kind: str
    weight: float
    required: bool
    pass_at: float
    check: Callable[[str, Row], Outcome] = field(repr=False)
    judge: Judge | None = field(default=None, repr=False)

    def __call__(self, reply: str, row: Row, judge_model: ChatModel | None = None) -> Outcome:
        if self.judge is not None:  # a failed judge call fails the stage (it is retried), as
            return self.judge(reply, row, judge_model)  # a broken call must not score an item
        try:
            out = self.check(reply, row)
        except Exception as exc:  # a scorer's own failure is recorded on the item
            return Outcome(0.0, False, f"scorer error: {type(exc).__name__}: {exc}", error=True)
        if not 0.0 <= out.score <= 1.0 or math.isnan(out.score):
            return Outcome(0.0, False, f"scorer error: score {out.score!r} outside [0, 1]", True)
        return out


COMMON = {"type", "name", "weight", "required", "pass_at"}


def _norm(text: str, opts: Mapping[str, Any]) -> str:
    text = unicodedata.normalize("NFKC", text)
    if not opts.get("case_sensitive", False):
        text = text.casefold()
    if opts.get("strip_punctuation", False):
        text = "".join(c for c in text if not unicodedata.category(c).startswith("P"))
    if opts.get("collapse_whitespace", True):
        text = " ".join(text.split())
    return text.strip()


def _value(spec: Mapping[str, Any], row: Row, key: str = "value") -> Any:
    """A literal (`value`/`values`) or a row field (`field`), else the row's `expected`."""
    if key in spec:
        return spec[key]
    name = spec.get("field", "expected")
    if name not in row:
        raise KeyError(f"row has no field {name!r}")
    return row[name]


def _short(text: Any, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _binary(ok: bool, reason: str) -> Outcome:
    return Outcome(1.0 if ok else 0.0, ok, "" if ok else reason)


def _exact(spec: Mapping[str, Any]) -> Callable[[str, Row], Outcome]:
    def check(reply: str, row: Row) -> Outcome:
        wanted = _value(spec, row)
        options = wanted if isinstance(wanted, list) else [wanted]
        got = _norm(reply, spec)
        ok = any(got == _norm(str(w), spec) for w in options)
        return _binary(ok, f"got {_short(reply.strip())}, expected {_short(options[0])}")

    return check


def _contains(mode: str, spec: Mapping[str, Any]) -> Callable[[str, Row], Outcome]:
    def check(reply: str, row: Row) -> Outcome:
        wanted = _value(spec, row, "values" if "values" in spec else "value")
        needles = [str(w) for w in (wanted if isinstance(wanted, list) else [wanted])]
        got = _norm(reply, spec)
        found = [n for n in needles if _norm(n, spec) in got]
        if mode == "any":
            return _binary(bool(found), f"none of {_short(needles)} in the reply")
        missing = [n for n in needles if n not in found]
        score = len(found) / len(needles) if needles else 1.0
        return Outcome(score, not missing, f"missing {_short(missing)}" if missing else "")

    return check


def _regex(spec: Mapping[str, Any], where: str) -> Callable[[str, Row], Outcome]:
    pattern = spec.get("pattern")
    if not isinstance(pattern, str):
        raise AdapterError(f"{where}: needs `pattern`, a regular expression")
    flags = 0 if spec.get("case_sensitive", True) else re.IGNORECASE
    try:
        compiled = re.compile(pattern, flags | re.MULTILINE)
    except re.error as exc:
        raise AdapterError(f"{where}: bad regular expression {pattern!r}: {exc}") from None
    full = bool(spec.get("full_match", False))

    def check(reply: str, row: Row) -> Outcome:
        text = reply.strip()
        ok = bool(compiled.fullmatch(text) if full else compiled.search(text))
        return _binary(ok, f"does not match /{pattern}/")

    return check


_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _numeric(spec: Mapping[str, Any]) -> Callable[[str, Row], Outcome]:
    tolerance = float(spec.get("tolerance", 0.0))
    relative = bool(spec.get("relative", False))

    def check(reply: str, row: Row) -> Outcome:
        wanted = float(str(_value(spec, row)).replace(",", ""))
        found = _NUMBER.findall(reply)
        if not found:
            return Outcome(0.0, False, f"no number in the reply (expected {wanted:g})")
        got = float(found[-1].replace(",", ""))
        allowed = tolerance * abs(wanted) if relative else tolerance
        ok = abs(got - wanted) <= allowed
        return _binary(ok, f"got {got:g}, expected {wanted:g} (tolerance {allowed:g})")

    return check


def _json(spec: Mapping[str, Any], where: str) -> Callable[[str, Row], Outcome]:
    schema = spec.get("schema")
    validator = None
    if schema is not None:
        import jsonschema

        try:
            validator = jsonschema.Draft202012Validator(schema)
            validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise AdapterError(f"{where}: bad JSON schema: {exc.message}") from None
    equals: Mapping[str, Any] = spec.get("equals", {})
    if not isinstance(equals, Mapping):
        raise AdapterError(f"{where}: `equals` maps a reply key to a value or {{field: name}}")

    def check(reply: str, row: Row) -> Outcome:
        text = reply.strip()
        if text.startswith("```"):
            text = text.strip("`").removeprefix("json").strip()
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return Outcome(0.0, False, f"not valid JSON: {exc.msg}")
        if validator is not None:
            error = next(iter(validator.iter_errors(value)), None)
            if error is not None:
                path = "/".join(str(p) for p in error.absolute_path) or "(root)"
                return Outcome(0.0, False, f"JSON does not match the schema at {path}")
        for key, want in equals.items():
            target = row[want["field"]] if isinstance(want, Mapping) else want
            if not isinstance(value, dict) or value.get(key) != target:
                got = value.get(key) if isinstance(value, dict) else None
                return Outcome(0.0, False, f"{key} is {_short(got)}, expected {_short(target)}")
        return Outcome(1.0, True, "")

    return check


def _length(spec: Mapping[str, Any], where: str) -> Callable[[str, Row], Outcome]:
    unit = spec.get("unit", "chars")
    if unit not in ("chars", "words"):
        raise AdapterError(f"{where}: unit must be chars or words, got {unit!r}")
    low, high = spec.get("min", 0), spec.get("max")
    if high is None and not low:
        raise AdapterError(f"{where}: needs `min` or `max`")

    def check(reply: str, row: Row) -> Outcome:
        text = reply.strip()
        size = len(text.split()) if unit == "words" else len(text)
        ok = size >= low and (high is None or size <= high)
        bounds = f"{low}..{'' if high is None else high}"
        return _binary(ok, f"{size} {unit}, wanted {bounds}")

    return check


def _python(spec: Mapping[str, Any], where: str) -> Callable[[str, Row], Outcome]:
    target = spec.get("function")
    if not isinstance(target, str) or ":" not in target:
        raise AdapterError(f"{where}: `function` must be module:function, got {target!r}")
    module_name, _, attr = target.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise AdapterError(f"{where}: cannot load {target}: {exc}") from None
    if not callable(fn):
        raise AdapterError(f"{where}: {target} is not callable")

    def check(reply: str, row: Row) -> Outcome:
        result = fn(reply, dict(row))
        score, feedback = result if isinstance(result, tuple) else (result, "")
        score = float(score)
        return Outcome(score, False, str(feedback))  # `passed` is set from pass_at below

    return check


def build(spec: Any, index: int) -> Scorer:
    """One scorer from its spec; an AdapterError names `env.options.scorers[index] (type)`."""
    kind = spec.get("type") if isinstance(spec, Mapping) else None
    where = f"env.options.scorers[{index}]" + (f" ({kind})" if kind else "")
    if not isinstance(spec, Mapping) or not isinstance(kind, str):
        raise AdapterError(f"{where}: each scorer is a mapping with a `type`")
    makers: dict[str, Callable[[], Callable[[str, Row], Outcome]]] = {
        "exact": lambda: _exact(spec),
        "contains": lambda: _contains("all", spec),
        "contains_all": lambda: _contains("all", spec),
        "contains_any": lambda: _contains("any", spec),
        "regex": lambda: _regex(spec, where),
        "numeric": lambda: _numeric(spec),
        "json": lambda: _json(spec, where),
        "length": lambda: _length(spec, where),
        "python": lambda: _python(spec, where),
    }
    judge = None
    if kind == "judge":
        from skillopt.adapters.environments.judge import Judge

        judge = Judge(spec, where)
        makers["judge"] = lambda: lambda reply, row: Outcome(0.0, False, "no judge")
    if kind not in makers:
        known = ", ".join(sorted([*makers, "judge"]))
        raise AdapterError(f"{where}: unknown scorer type {kind!r} (known: {known})")
    weight, pass_at = spec.get("weight", 1.0), spec.get("pass_at", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        raise AdapterError(f"{where}: weight must be a number >= 0, got {weight!r}")
    if isinstance(pass_at, bool) or not isinstance(pass_at, int | float) or not 0 <= pass_at <= 1:
        raise AdapterError(f"{where}: pass_at must be in [0, 1], got {pass_at!r}")
    if not isinstance(spec.get("required", False), bool):
        raise AdapterError(f"{where}: required must be true or false")
    check = makers[kind]()

    def scored(reply: str, row: Row) -> Outcome:
        out = check(reply, row)
        return Outcome(out.score, out.score >= pass_at, out.reason, out.error)

    return Scorer(
        str(spec.get("name", kind)),
        kind,
        float(weight),
        bool(spec.get("required", False)),
        float(pass_at),
        scored,
        judge,
    )


def combine(
    scorers: list[Scorer], outcomes: list[Outcome], threshold: float
) -> tuple[float, float]:
    """(hard, soft): soft is the weighted mean; hard is 1 when every required scorer passes,
    or, with none required, when soft reaches the threshold. A scorer error never passes."""
    total = sum(s.weight for s in scorers)
    soft = sum(s.weight * o.score for s, o in zip(scorers, outcomes, strict=True))
    soft = soft / total if total else 0.0
    required = [o for s, o in zip(scorers, outcomes, strict=True) if s.required]
    if any(o.error for o in outcomes):
        return 0.0, soft
    passed = all(o.passed for o in required) if required else soft >= threshold
    return (1.0 if passed else 0.0), soft
