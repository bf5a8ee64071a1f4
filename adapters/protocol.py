"""The protocols adapters implement. Nothing else of skillopt is imported by adapters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["optimizer", "target"]
Split = Literal["train", "selection", "test"]


class AdapterError(ValueError):
    """Bad adapter input (unknown option, bad value): a usage error naming the culprit."""


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """One model call. `purpose` and `hints` are read by the offline model, ignored by real ones."""

    role: Role
    system: str
    messages: tuple[Message, ...]
    purpose: str
    hints: Mapping[str, Any] = field(default_factory=dict)
    max_tokens: int = 4096
    temperature: float | None = None
    json_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    retries: int = 0  # transient failures retried before this answer


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
    train:selection:test; `split_seed` orders the rows before a ratio split."""

    split_dir: str | None = None
    data_path: str | None = None
    split_ratio: tuple[float, float, float] = (2.0, 1.0, 7.0)
    split_seed: int = 42


class ModelCallError(RuntimeError):
    """A call that failed for good (a non-retryable status, or retries exhausted)."""


class ChatModel(Protocol):
    name: str
    # Backends that reach a provider take RoleSettings; the offline model takes options.

    def complete(self, request: ChatRequest) -> Completion: ...


@dataclass(frozen=True)
class Item:
    id: str
    task_type: str
    prompt: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RolloutResult:
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


class Environment(Protocol):
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
