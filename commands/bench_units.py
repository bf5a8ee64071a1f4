"""A bench's task runs as units of work on an executor (commands/executors/): one unit is one
task solved with one configuration. The driver appends one `bench.task` per unit in the plan's
order, so the ledger is the same whichever executor or worker count ran them.

A bench's configurations each have their own environment and target model, so its port holds
them all (`BenchPort.arm`); in a Ray worker the port is rebuilt from `BenchRecipe`: the
environments as the driver made them (tasks read, documentation modules fetched: a worker
fetches nothing) and each target's settings (the key comes from the worker's environment).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from skillopt.adapters.protocol import ChatModel, Environment, Item
from skillopt.commands.clock import utc_now
from skillopt.commands.journal import CallStore, JournaledModel
from skillopt.machine.core.canonical import canonical_json, sha256_text


@dataclass
class BenchPort:
    """The bench's configurations as a unit sees them: environment and model per arm."""

    envs: Sequence[Any]  # ClosedLoopEnvironment per arm
    models: Sequence[ChatModel | None]
    calls: CallStore
    run_id: str

    @property
    def env(self) -> Environment:  # the executor's Port protocol: the first arm's
        return self.envs[0]

    def model_for(self, role: str, step: int, stage: str, unit: str) -> JournaledModel:
        arm = int(unit.split(":", 1)[0])  # a bench unit is named ARM:TASK
        model = self.models[arm]
        if model is None:
            raise RuntimeError("bench: make_models runs before any task")
        return JournaledModel(model, self.calls, self.run_id, role, step, stage, unit, utc_now)


@dataclass(frozen=True)
class BenchRecipe:
    """How a Ray worker builds the bench's port (no ledger URL, no key in it)."""

    envs: tuple[Any, ...]
    settings: tuple[Any, ...]  # each arm's target RoleSettings
    run_id: str

    def build(self, calls: CallStore) -> BenchPort:
        from skillopt.adapters.registry import make_model

        key = sha256_text(canonical_json([self.run_id, [repr(s) for s in self.settings]]))
        if key not in _MODELS:  # a worker runs many units: its models are made once
            _MODELS[key] = [make_model(s) for s in self.settings]
        return BenchPort(self.envs, _MODELS[key], calls, self.run_id)


_MODELS: dict[str, list[ChatModel]] = {}


@dataclass(frozen=True)
class BenchJob:
    skills: tuple[str, ...]  # the skill each arm's target reads


def solve_unit(
    job: BenchJob, unit: tuple[int, Item], port: BenchPort
) -> tuple[Any, list[str], float]:
    """One task with one configuration: (episode, the calls it made, its wall time in s)."""
    arm, item = unit
    model = port.model_for("target", 0, "bench", f"{arm}:{item.id}")
    start = time.monotonic()
    episode = port.envs[arm].solve(item, job.skills[arm], model)
    return episode, model.call_ids, time.monotonic() - start
