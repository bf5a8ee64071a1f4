"""What handlers get from the outside world: config, environment, models, blobs, templates."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from skillopt.adapters.protocol import (
    AdapterError,
    ChatModel,
    Environment,
    Item,
    RoleSettings,
)
from skillopt.adapters.registry import make_environment, make_model
from skillopt.commands.clock import utc_now
from skillopt.commands.config_files import data_source
from skillopt.commands.errors import InputError
from skillopt.commands.executors import Executor, Port
from skillopt.commands.journal import CallStore, JournaledModel, LedgerCalls
from skillopt.ledger.ledger import Ledger
from skillopt.machine.config.schema import SkilloptConfig
from skillopt.machine.core.canonical import canonical_json, sha256_text

SPLITS = ("train", "selection", "test")


def load_template(name: str) -> str:
    return resources.files("skillopt.skills").joinpath("optimizer", f"{name}.md").read_text("utf-8")


class Progress:
    """Progress callbacks; the CLI swaps in a rich bar when stdout is a terminal."""

    def start(self, label: str, total: int) -> None:  # noqa: B027 - a no-op by design
        pass

    def advance(self, n: int = 1) -> None:  # noqa: B027
        pass

    def stop(self) -> None:  # noqa: B027
        pass

    @contextmanager
    def task(self, label: str, total: int) -> Iterator[Progress]:
        self.start(label, total)
        try:
            yield self
        finally:
            self.stop()


def role_settings(config: SkilloptConfig, role: str) -> RoleSettings:
    r = getattr(config.models, role)
    return RoleSettings(
        role=role,
        backend=r.backend,
        model=r.model,
        base_url=r.base_url,
        api_key_env=r.api_key_env,
        api_version=r.api_version,
        temperature=r.temperature,
        max_tokens=r.max_tokens or 4096,
        reasoning_effort=r.reasoning_effort,
        timeout_s=r.timeout_s,
        max_attempts=r.max_attempts,
        max_concurrency=r.max_concurrency,
        requests_per_minute=r.requests_per_minute,
        retry_base_s=r.retry_base_s,
        retry_deadline_s=r.retry_deadline_s,
        options=r.options,
    )


def build_adapters(config: SkilloptConfig) -> tuple[Environment, ChatModel, ChatModel]:
    try:
        env = make_environment(
            config.env.name, config.env.options, data_source(config.env, config.parity)
        )
        target = make_model(role_settings(config, "target"))
        optimizer = make_model(role_settings(config, "optimizer"))
    except AdapterError as exc:
        raise InputError(str(exc)) from None
    if "judge" in env_roles(env) and config.models.judge is None:
        raise InputError(
            f"environment {env.name!r} has a judge scorer: set models.judge (backend, model)"
        )
    return env, target, optimizer


def env_roles(env: Environment) -> tuple[str, ...]:
    """The model roles an environment's rollouts use (the protocol's optional `roles`)."""
    return tuple(getattr(env, "roles", ("target",)))


def build_judge(config: SkilloptConfig) -> ChatModel | None:
    if config.models.judge is None:
        return None
    try:
        return make_model(role_settings(config, "judge"))
    except AdapterError as exc:
        raise InputError(str(exc)) from None


def split_items(env: Environment, config: SkilloptConfig) -> dict[str, list[Item]]:
    """Items per split as this run uses them (selection/test cut to the configured size)."""
    out = {split: list(env.items(split)) for split in SPLITS}  # type: ignore[arg-type]
    limits = {"selection": config.evaluation.sel_env_num, "test": config.evaluation.test_env_num}
    for split, limit in limits.items():
        if limit:
            out[split] = out[split][:limit]
    needed = ["train", "selection"] + (["test"] if config.evaluation.eval_test else [])
    for split in needed:
        if not out[split]:
            raise InputError(f"environment {env.name!r}: the {split} split is empty")
    wanted = config.train.train_size
    if wanted and wanted != len(out["train"]):
        raise InputError(
            f"train.train_size is {wanted} but the train split has {len(out['train'])} items"
        )
    for split in SPLITS:
        seen: set[str] = set()
        for item in out[split]:
            if item.id in seen:
                raise InputError(
                    f"environment {env.name!r}: duplicate item id {item.id!r} in {split}"
                )
            seen.add(item.id)
    return out


def fingerprint(items: list[Item]) -> str:
    return sha256_text(canonical_json([[i.id, i.task_type, i.prompt, dict(i.data)] for i in items]))


class LedgerFile:
    """A SQLite ledger's file, as it was when the run opened it. SQLite goes on writing to a
    file that was deleted (or replaced) under it, and the run would end well with its ledger
    gone: the runner checks before every append, and stops with one line instead."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.identity = self._identity()

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        if self.identity is None or self._identity() != self.identity:
            raise LedgerGone(
                f"the ledger {self.path} was removed or replaced while this run wrote to it; "
                "nothing more is recorded: restore it, or start the run again"
            )

    @classmethod
    def of(cls, ledger: Ledger) -> LedgerFile | None:
        url = ledger.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return cls(str(url.database))


class LedgerGone(RuntimeError):
    """The ledger's file was removed or replaced under a running run (exit 1)."""


@dataclass
class StageContext:
    config: SkilloptConfig
    env: Environment
    target: ChatModel
    optimizer: ChatModel
    ledger: Ledger
    items: dict[str, dict[str, Item]]
    progress: Progress
    run_id: str
    clock: Callable[[], str] = utc_now
    judge: ChatModel | None = None  # models.judge, for environments with judge scorers
    ledger_file: LedgerFile | None = None  # a SQLite ledger's file, watched while a run writes
    executor: Executor | None = None  # where per-item work runs (train.executor); None: here
    _texts: dict[str, str] = field(default_factory=dict)
    _pending: dict[str, str] = field(default_factory=dict)  # stored, not yet committed

    def model_for(self, role: str, step: int, stage: str, unit: str) -> JournaledModel:
        """The role's model for one unit of work, behind the call journal."""
        models = {"target": self.target, "optimizer": self.optimizer, "judge": self.judge}
        where = (self.calls, self.run_id, self.clock)
        return journaled(self.config, models.get(role), *where, role, step, stage, unit)

    def close(self) -> None:
        """Release the executor (a Ray instance this run started stops)."""
        if self.executor is not None:
            self.executor.close()

    @property
    def calls(self) -> LedgerCalls:
        return LedgerCalls(self.ledger)

    def ordered(
        self, work: Callable[[Any, Any, Port], Any], shared: Any, units: Sequence[Any], width: int
    ) -> Iterator[Any]:
        """Per-item work on the run's executor (threads here unless it has another)."""
        from skillopt.commands.executors.local import LocalExecutor

        return (self.executor or LocalExecutor(self)).ordered(work, shared, units, width)

    def item(self, split: str, item_id: str) -> Item:
        try:
            return self.items[split][item_id]
        except KeyError:
            raise InputError(
                f"item {item_id!r} of the {split} split is no longer in environment {self.env.name!r}"
            ) from None

    def text(self, hash_: str) -> str:
        if hash_ not in self._texts:
            self._texts[hash_] = self.ledger.get_blob(hash_)
        return self._texts[hash_]

    def texts(self, hashes: list[str]) -> dict[str, str]:
        missing = [h for h in hashes if h not in self._texts]
        if missing:
            self._texts.update(self.ledger.get_blobs(missing))
        return {h: self.text(h) for h in hashes}

    def store(self, *texts: str) -> list[str]:
        """Texts the next events refer to, by hash: the runner commits them with those events,
        in their transaction (one commit per rollout instead of two)."""
        hashes = [sha256_text(t) for t in texts]
        for h, t in zip(hashes, texts, strict=True):
            self._texts[h] = t
            self._pending[h] = t
        return hashes

    def take_pending(self) -> list[str]:
        """The stored texts not committed yet (the runner appends them with the next events)."""
        pending, self._pending = list(self._pending.values()), {}
        return pending


Factory = Callable[[], StageContext]


def journaled(
    config: SkilloptConfig,
    inner: ChatModel | None,
    calls: CallStore,
    run_id: str,
    clock: Callable[[], str],
    role: str,
    step: int,
    stage: str,
    unit: str,
) -> JournaledModel:
    """A role's model for one unit of work, behind the call journal (in the driver or a worker)."""
    if inner is None:
        raise InputError(f"no model for role {role!r}: set models.{role}")
    settings = getattr(config.models, role)
    limit = settings.max_tokens if config.config_version >= 2 else None
    if role != "optimizer" and limit is not None:  # the role's limit over the env's own
        return JournaledModel(inner, calls, run_id, role, step, stage, unit, clock, limit)
    return JournaledModel(inner, calls, run_id, role, step, stage, unit, clock)


@dataclass(frozen=True)
class ConfigPort:
    """A worker's port, built from what a unit may carry: the run's config and id (no ledger
    URL, no key: the models read their keys from the worker's environment). The environment
    and the models are built once per worker process (a worker runs many units)."""

    config: SkilloptConfig
    run_id: str

    def build(self, calls: CallStore) -> Port:
        key = canonical_json([self.run_id, self.config.model_dump(mode="json")])
        if key not in _BUILT:
            env, target, optimizer = build_adapters(self.config)
            _BUILT[key] = (env, {"target": target, "optimizer": optimizer})
            _BUILT[key][1]["judge"] = build_judge(self.config)
        env, models = _BUILT[key]
        return _WorkerPort(self, env, models, calls)


_BUILT: dict[str, tuple[Environment, dict[str, ChatModel | None]]] = {}


@dataclass
class _WorkerPort:
    recipe: ConfigPort
    env: Environment
    models: dict[str, ChatModel | None]
    calls: CallStore

    def model_for(self, role: str, step: int, stage: str, unit: str) -> JournaledModel:
        r = self.recipe
        where = (self.calls, r.run_id, utc_now)
        return journaled(r.config, self.models.get(role), *where, role, step, stage, unit)
