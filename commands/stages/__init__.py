"""One module per group of stages. A handler is a generator: it yields events (or lists of
events appended in one transaction) and receives the state folded with them."""

from __future__ import annotations

from collections.abc import Generator
from typing import Union

from skillopt.machine.core.events import Event
from skillopt.machine.core.state import TrainerState

Batch = Union[Event, list[Event]]  # noqa: UP007 - a runtime alias
HandlerGen = Generator[Batch, TrainerState, None]
