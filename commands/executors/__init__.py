"""Where per-item work runs: the executor of a run (`train.executor`).

A unit of work (one rollout, one program run) is a module-level function `work(shared, unit,
port)`: `shared` is what every unit of a batch shares (the skill, the phase...), `unit` its
own input, `port` what it may touch of the outside world (the environment, the roles' models
behind the call journal). An executor runs the units and hands their results back in input
order, so the driver appends the same events in the same order whichever executor, worker
count or timing: the local one in threads of this process, the Ray one as Ray tasks
(`on_ray.py`), whose model calls reach the journal through the driver (`broker.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from skillopt.adapters.protocol import Environment
    from skillopt.commands.journal import CallStore, JournaledModel

S = TypeVar("S")
U = TypeVar("U")
R = TypeVar("R")

RAY_EXTRA = "pip install 'skillopt[ray]'"


class Port(Protocol):
    """What one unit of work may use: the environment, and a role's model for the unit behind
    the call journal."""

    @property
    def env(self) -> Environment: ...

    def model_for(self, role: str, step: int, stage: str, unit: str) -> JournaledModel: ...


class PortRecipe(Protocol):
    """How a worker builds its port from what a unit may carry (never the ledger's URL): the
    run's config and id; `calls` is the journal as the worker reaches it."""

    def build(self, calls: CallStore) -> Port: ...


Work = Callable[[S, U, Port], R]


class Executor(Protocol):
    def ordered(
        self, work: Callable[[S, U, Port], R], shared: S, units: Sequence[U], width: int
    ) -> Iterator[R]:
        """`work(shared, unit, port)` of every unit, at most `width` at a time, results in
        input order. Closing the iterator early drops the units not started."""
        ...

    def close(self) -> None: ...


class ExecutorLost(RuntimeError):
    """The cluster (or a worker, past its retries) is gone: the run stops with one line and
    records nothing of it, so running again resumes as if it had not happened (exit 1)."""


def ray_missing() -> bool:
    """Whether the `ray` extra is absent (asked without importing Ray: it is slow to load)."""
    from importlib.util import find_spec

    try:
        return find_spec("ray") is None
    except (ImportError, ValueError, AttributeError):  # a module entry that is not a package
        return True


def require_executor(config: Any) -> None:
    """Refuse, in one line, an executor whose extra is not installed (exit 2)."""
    from skillopt.commands.errors import InputError

    if config.train.executor == "ray" and ray_missing():
        raise InputError(f"train.executor is ray, but Ray is not installed: {RAY_EXTRA}")


def make_executor(config: Any, local: Port, recipe: PortRecipe, calls: CallStore) -> Executor:
    """The run's executor: threads of this process over `local`, or Ray tasks building their
    port from `recipe`, their calls journaled into `calls` by this process."""
    from skillopt.commands.executors.local import LocalExecutor

    if config.train.executor != "ray":
        return LocalExecutor(local)
    from skillopt.commands.executors.on_ray import RayExecutor

    return RayExecutor(config, recipe, calls)
