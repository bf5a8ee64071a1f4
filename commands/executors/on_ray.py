"""The Ray executor (`train.executor: ray`): each unit is a Ray task; the driver stays the
ledger's only writer and takes results in input order, as the local executor does.

What a task carries: the work function, what the batch shares (the skill...), the unit (an
item), the port recipe (the run's config and id) and the broker's handle. Never the ledger's
URL; API keys reach the workers through the task's runtime environment (`env_vars`, read here
from the driver's environment by the roles' `api_key_env` names and `ray.env_vars`).

Faults: a unit whose worker dies runs again (`ray.max_retries`); its completed calls were
journaled through the driver before the worker went on, so the new run is answered from the
journal, and the driver says how often a unit ran. A cluster that is lost, or a unit past its
retries, stops the run with one line (ExecutorLost) and nothing of it recorded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import ray
from ray import exceptions as rx

from skillopt.commands.executors import ExecutorLost, Port, PortRecipe
from skillopt.commands.executors.broker import BrokerCalls, CallBroker, JournalService
from skillopt.commands.journal import CallStore

S = TypeVar("S")
U = TypeVar("U")
R = TypeVar("R")


def run_unit(
    work: Callable[[S, U, Port], R], shared: S, unit: U, recipe: PortRecipe, broker: Any, key: str
) -> R:
    """The Ray task: one unit in a worker, its calls journaled through the driver."""
    calls = BrokerCalls(broker)
    calls.started(key)
    return work(shared, unit, recipe.build(calls))


def worker_env(config: Any) -> dict[str, str]:
    """The environment variables the workers get: the roles' API keys and `ray.env_vars`, from
    this process's environment (a missing one is the model's own error, as locally)."""
    names = [
        role.api_key_env
        for role in (config.models.target, config.models.optimizer, config.models.judge)
        if role is not None and role.api_key_env
    ]
    names += list(config.ray.env_vars)
    return {name: os.environ[name] for name in dict.fromkeys(names) if name in os.environ}


class RayExecutor:
    def __init__(self, config: Any, recipe: PortRecipe, calls: CallStore) -> None:
        self.settings = config.ray
        self.env_vars = worker_env(config)
        self.recipe = recipe
        self.calls = calls
        self.owned = False  # this process started Ray (and shuts it down)
        self.service: JournalService | None = None
        self.serial = 0
        self.reruns = 0  # runs of units past their first (a worker died under them)
        self.watch: ClusterWatch | None = None

    @property
    def where(self) -> str:
        return self.settings.address or "a local Ray instance"

    def _start(self) -> JournalService:
        if self.service is not None:
            return self.service
        if not ray.is_initialized():
            address = self.settings.address or None
            options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if address is None:
                options["include_dashboard"] = False
            if address is not None:
                _reachable(address)
            try:
                ray.init(address=address, **options)
            except (ConnectionError, RuntimeError, rx.RayError) as exc:
                raise ExecutorLost(
                    f"ray.address {address or '(local)'}: Ray did not start or join a cluster: "
                    f"{_first_line(exc)}; nothing was recorded"
                ) from None
            self.owned = True
        self.watch = ClusterWatch(ray.get_runtime_context().gcs_address, self.where)
        self.watch.start()
        self.broker = ray.remote(num_cpus=0)(CallBroker).remote()
        self.recipe_ref = ray.put(self.recipe)
        options = {
            "num_cpus": self.settings.num_cpus_per_rollout,
            "max_retries": self.settings.max_retries,
            "retry_exceptions": False,  # a unit's own error fails the stage, as locally
        }
        runtime_env = {**self.settings.runtime_env, "env_vars": self.env_vars}
        if self.settings.runtime_env or self.env_vars:  # none: the job's own workers serve
            options["runtime_env"] = runtime_env
        self.task = ray.remote(run_unit).options(**options)
        self.service = JournalService(self.broker, self.calls)
        return self.service

    def ordered(
        self, work: Callable[[S, U, Port], R], shared: S, units: Sequence[U], width: int
    ) -> Iterator[R]:
        service = self._start()
        shared_ref = ray.put(shared)
        window: deque[tuple[str, Any]] = deque()
        submitted = 0

        def submit() -> None:
            nonlocal submitted
            self.serial += 1
            key = f"u{self.serial}"
            ref = self.task.remote(
                work, shared_ref, units[submitted], self.recipe_ref, self.broker, key
            )
            window.append((key, ref))
            submitted += 1

        try:
            for index in range(len(units)):
                while submitted < len(units) and len(window) < max(1, width):
                    submit()
                key, ref = window.popleft()
                result = self._get(ref, service)
                runs = service.starts.pop(key, 1)
                if runs > 1:  # said, not recorded: the events are the same either way
                    self.reruns += runs - 1
                    sys.stderr.write(
                        f"ray: unit {index + 1} of {len(units)} ran {runs} times (its worker "
                        f"died; ray.max_retries {self.settings.max_retries}); "
                        f"{self.reruns} rerun(s) in this run\n"
                    )
                yield result
        finally:
            # Units in flight finish (their calls are journaled), as the local pool's do; the
            # units never submitted are dropped.
            if window:
                ray.wait([ref for _, ref in window], num_returns=len(window), timeout=600)

    def _get(self, ref: Any, service: JournalService) -> Any:
        try:
            return ray.get(ref)
        except rx.RayTaskError as exc:  # the unit raised: its own error, as locally
            if service.failure is not None:
                raise service.failure from None
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise ExecutorLost(f"ray: a unit failed: {_first_line(exc)}") from None
        except (rx.RayError, ConnectionError) as exc:  # a worker past its retries, a lost node
            if isinstance(service.failure, Exception) and not isinstance(
                service.failure, rx.RayError | ConnectionError
            ):
                raise service.failure from None
            raise ExecutorLost(
                f"ray: lost the cluster at {self.where} ({type(exc).__name__}: "
                f"{_first_line(exc)}); the units recorded so far are kept: run again to resume"
            ) from None

    def close(self) -> None:
        if self.watch is not None:  # before a local instance this process owns goes down
            self.watch.stop()
            self.watch = None
        if self.service is not None:
            self.service.stop()
            self.service = None
            # A cluster already gone is what the run has said in its own line; the broker
            # goes with it (and with the job in any case).
            with contextlib.suppress(rx.RayError, ConnectionError):
                ray.kill(self.broker)
        if self.owned:
            ray.shutdown()
            self.owned = False


class ClusterWatch(threading.Thread):
    """Ray ends a driver whose cluster is gone on its own, a minute later, with log lines of
    its own. The watch says it first, in our one line, and ends the process: every event and
    journaled call is committed in a transaction of its own, so nothing is left half-written
    and `skillopt run` resumes once the cluster is back. It knocks on the cluster's GCS port
    every `period` seconds; `misses` knocks in a row unanswered mean the cluster is lost."""

    def __init__(self, gcs_address: str, where: str, period: float = 2.0, misses: int = 3) -> None:
        super().__init__(name="skillopt-ray-watch", daemon=True)
        host, _, port = gcs_address.rpartition(":")
        self.target = (host, int(port))
        self.where, self.period, self.misses = where, period, misses
        self.stopped = threading.Event()

    def run(self) -> None:
        missed = 0
        while not self.stopped.wait(self.period):
            try:
                socket.create_connection(self.target, timeout=self.period).close()
                missed = 0
            except OSError:
                missed += 1
            if missed >= self.misses and not self.stopped.is_set():
                sys.stderr.write(
                    f"failed: ray: lost the cluster at {self.where} (its GCS at "
                    f"{self.target[0]}:{self.target[1]} stopped answering); the units recorded "
                    "so far are kept: start the cluster again and run again to resume\n"
                )
                sys.stderr.flush()
                os._exit(1)

    def stop(self) -> None:
        self.stopped.set()


def _reachable(address: str) -> None:
    """A head's host:port that does not answer: said at once (Ray itself retries for minutes).
    `auto` and `ray://` addresses are Ray's to check."""
    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ExecutorLost(
            f"ray.address {address}: no Ray cluster answers there ({exc.strerror or exc}); "
            "start one (ray start --head) or fix the address; the ledger is as it was"
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
