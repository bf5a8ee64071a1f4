"""The protocols adapters implement: a chat model backend and an environment. This page is the
whole contract; `examples/plugin/` is a complete, tested plugin. Adapters import nothing of
skillopt but this module (and, to read data files, `skillopt.adapters.environments.splits`).

Registering: a package declares entry points in the groups `skillopt.environments` and
`skillopt.models`; a config names them like the built-ins (`env.name`, `models.<role>.backend`).

Determinism: a rollout is a pure function of the item, the skill and the model's replies (no
clock, no random draw, no network of its own, no state kept between rollouts). Then a crash
costs nothing (completed calls are answered from the call journal on resume), `replay --verify`
holds, and the same replies give the same scores. Rollouts run concurrently
(`train.workers` threads): an environment and a model must be thread-safe.

Errors: bad options or data raise `AdapterError` with one line naming the key, or the file and
row (`init` prints it and exits 2 before anything is recorded). An exception during a rollout
(a `ModelCallError`, a bug) fails the stage: it is recorded as `stage.failed` and `skillopt run`
retries the stage. Never score a broken call as a wrong answer: that teaches the optimizer noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["optimizer", "target", "judge"]
Split = Literal["train", "selection", "test"]


class AdapterError(ValueError):
    """Bad adapter input (unknown option, bad value, a bad data row): a usage error whose one
    line names the culprit (`env.options.<key>`, or the field of a row; skillopt prefixes the
    file and row)."""


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """One model call.

    `role`: `target` (a rollout: `system` is the skill) or `optimizer` (reflection, merge,
    ranking, ...). `temperature` None: the provider's default. `json_schema` (optimizer
    requests): the reply must contain JSON of that shape, fenced or bare. `purpose` (`rollout`,
    `reflect`, `merge`, `rank`, `doctor`, ...) and `hints` are read by the offline model and
    ignored by real ones.

    Prompt caching (read by provider backends, ignored by others; never part of what a call
    means, so the call journal leaves them out): `system` is always a cached prefix (for the
    target it is the skill); `cache_prefix` > 0 says the first that many characters of the
    first message repeat across calls too (the optimizer's current skill), so a backend with
    explicit caching ends a second cached prefix there; `cache_key` names the requests that
    share a prefix (OpenAI's `prompt_cache_key`), set by skillopt per run, role and skill."""

    role: Role
    system: str
    messages: tuple[Message, ...]
    purpose: str
    hints: Mapping[str, Any] = field(default_factory=dict)
    max_tokens: int = 4096
    temperature: float | None = None
    json_schema: Mapping[str, Any] | None = None
    cache_prefix: int = 0
    cache_key: str | None = None


@dataclass(frozen=True)
class Completion:
    """A model's answer: its text, the model that answered, token counts (input includes the
    cached tokens read, `cache_read_tokens`, and written, `cache_write_tokens`) and how many
    transient failures were retried before it."""

    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    retries: int = 0  # transient failures retried before this answer
    # Why the reply ended, normalised: stop, length (cut at max_tokens), tool_use,
    # content_filter, or the provider's own word; "" when the backend does not say.
    finish_reason: str = ""


@dataclass(frozen=True)
class RoleSettings:
    """How to reach a role's model; the API key is read from the environment variable named
    here, never from a config value."""

    role: str
    backend: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    temperature: float | None = None
    max_tokens: int = 4096
    reasoning_effort: str | None = None
    timeout_s: float = 120.0
    max_attempts: int = 4
    retry_base_s: float = 0.5
    retry_deadline_s: float = 600.0
    max_concurrency: int = 8
    requests_per_minute: float | None = None  # shared by every stage and role on the endpoint
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataSource:
    """Where an environment reads its items from files (`env.split_dir` or `env.data_path`).

    Paths are absolute (resolved against the config file at init). `split_ratio` is
    train:selection:test; `split_sizes`, when given, are absolute counts instead (rows past
    their sum are left out); `split_seed` orders the rows before the cut."""

    split_dir: str | None = None
    data_path: str | None = None
    split_ratio: tuple[float, float, float] = (2.0, 1.0, 7.0)
    split_seed: int = 42
    split_sizes: tuple[int, int, int] | None = None
    # Largest-remainder ties go to the larger ratio part, as the reference (config_version
    # >= 3); False: to the earlier split, as runs recorded before read their data.
    ties_to_larger: bool = False


class ModelCallError(RuntimeError):
    """A call that failed for good (a non-retryable status, or retries exhausted)."""


class ChatModel(Protocol):
    """A chat model backend, built as `Factory(role, model, options)`: `role` is `target` or
    `optimizer`, `model` the configured name, `options` the role's `options` mapping (validate
    it with `check_options(f"models.{role}.options", options, DEFAULTS)`). The built-in
    provider backends take a `RoleSettings` instead.

    `complete` answers one request. It retries transient failures itself (reporting how many
    in `Completion.retries`) and raises `ModelCallError` for a failure that is final; it never
    returns an error message as if it were the model's text. A backend may serve one role only
    and refuse the other's requests with `ModelCallError`. It must be thread-safe."""

    name: str

    def complete(self, request: ChatRequest) -> Completion: ...


@dataclass(frozen=True)
class Item:
    """One task. `id` is unique within the environment and stable across runs; `data` is
    JSON-able. Items are fingerprinted when a run starts; a resumed run refuses changed ones."""

    id: str
    task_type: str
    prompt: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutResult:
    """What one rollout scored.

    `hard` in [0, 1]: 0 is a failure (failures go to failure reflection); `soft` in [0, 1]
    (the gate's `soft` and `mixed` metrics). `fail_reason` is "" on success, else
    "category: detail" (the part before the first ":" groups failure patterns). `task_type`
    buckets the test report. `trajectory` is the text the optimizer reads: what was asked,
    answered and expected. `feedback` is a JSON-able hidden reference shown to the optimizer
    only (the offline optimizer reads `expected`, `got`, `rule`, `rule_pattern`, `decoy`,
    `decoy_pattern`). Token counts are the completions' own."""

    hard: float
    soft: float
    fail_reason: str
    task_type: str
    trajectory: str
    # Hidden reference shown to the optimizer only (expected answer, the rule it follows, ...).
    feedback: Mapping[str, Any] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    judge_tokens: tuple[int, int, int] = (0, 0, 0)  # a judge's calls: input, output, cached


class Environment(Protocol):
    """An environment, built as `Factory(options, source)`: `options` is the config's
    `env.options` (validate it with `check_options("env.options", options, DEFAULTS)`);
    `source` a `DataSource` when the config names data files (paths already absolute), else
    None (refuse a source you do not use). Optionally `split_manifest() -> dict`, recorded as
    `dataset.loaded.source`.

    `items(split)` lists the items of `train`, `selection` and `test`. `rollout(item, skill,
    model)` runs one item: it uses the full skill text as the target's system prompt (adding
    at most a fixed instruction), calls `model.complete(ChatRequest(role="target", ...))` once
    or several times in a fixed order (a repair loop), and scores the replies. `model` sits
    behind the call journal: a resumed run answers completed calls from it.

    Optionally `roles`: the model roles its rollouts use, ("target",) when absent. With
    "judge" in it, `rollout` is also given `judge=`, the `models.judge` model behind the call
    journal (ChatRequest role "judge"), and reports that model's tokens in `judge_tokens`."""

    name: str

    def items(self, split: Split) -> list[Item]: ...

    def task_types(self) -> list[str]: ...

    def rollout(self, item: Item, skill: str, model: ChatModel) -> RolloutResult: ...


def check_options(
    owner: str, options: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Merge options over defaults; an unknown key or a wrong type is an AdapterError."""
    merged = dict(defaults)
    for key, value in options.items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise AdapterError(f"{owner}.{key}: unknown option (known: {known})")
        want = type(defaults[key])
        ok = isinstance(value, want) or (want is float and isinstance(value, int))
        if not ok or (want is int and isinstance(value, bool)):
            raise AdapterError(f"{owner}.{key}: expected {want.__name__}, got {value!r}")
        merged[key] = value
    return merged
