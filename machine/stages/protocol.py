"""The protocol between a pure stage and whoever drives it (the shell, or replay --verify)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from skillopt.machine.core.canonical import sha256_text
from skillopt.machine.core.events import CallRecord, Event
from skillopt.machine.optimizer.asks import Ask

T = TypeVar("T")
Texts = Callable[[str], str]


@dataclass(frozen=True)
class Asking:
    """One optimizer call a stage needs, re-asked once by the driver if its reply is unusable.

    `unit` keys the call journal (with the step); `slot` says where the event records the
    answer, so verify finds the recorded call: "" (the event's own call/reask), a field name
    ("decision", "ranking", "rewrite", "consolidation") or "nodes/<id>" (a merge node)."""

    ask: Ask
    step: int
    unit: str
    slot: str


@dataclass(frozen=True)
class Answer(Generic[T]):
    value: T | None  # None: both replies were unusable
    error: str
    call: CallRecord
    reask: CallRecord | None


@dataclass(frozen=True)
class Decision:
    """What a stage decided: one event, and the new texts it refers to by sha256."""

    event: Event
    texts: list[str] = field(default_factory=list)


StageGen = Generator[Asking, Answer[Any], Decision]


def decided(event: Event, texts: list[str] | None = None) -> Decision:
    return Decision(event, texts or [])


class Produced:
    """Texts a stage makes (candidate skills), readable by the stage before they are stored."""

    def __init__(self, read: Texts) -> None:
        self._read = read
        self.texts: dict[str, str] = {}

    def add(self, text: str) -> str:
        h = sha256_text(text)
        self.texts[h] = text
        return h

    def __call__(self, hash_: str) -> str:
        return self.texts[hash_] if hash_ in self.texts else self._read(hash_)


def drive(result: StageGen | Decision, answer: Callable[[Asking], Answer[Any]]) -> Decision:
    """Run a stage to its decision, answering each ask with `answer`."""
    if isinstance(result, Decision):
        return result
    try:
        asking = next(result)
        while True:
            asking = result.send(answer(asking))
    except StopIteration as done:
        return done.value
