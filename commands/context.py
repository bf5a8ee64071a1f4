"""What handlers get from the outside world: config, environment, models, blobs, templates."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources

from skillopt.adapters.protocol import (
    AdapterError,
    ChatModel,
    DataSource,
    Environment,
    Item,
    RoleSettings,
)
from skillopt.adapters.registry import make_environment, make_model
from skillopt.commands.clock import utc_now
from skillopt.commands.errors import InputError
from skillopt.commands.journal import JournaledModel
from skillopt.ledger.store import Ledger
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
        max_tokens=r.max_tokens,
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
        e = config.env
        source = None
        if e.split_dir is not None or e.data_path is not None:
            source = DataSource(e.split_dir, e.data_path, e.ratio(), e.split_seed)
        env = make_environment(e.name, e.options, source)
        target = make_model(role_settings(config, "target"))
        optimizer = make_model(role_settings(config, "optimizer"))
    except AdapterError as exc:
        raise InputError(str(exc)) from None
    return env, target, optimizer


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
    _texts: dict[str, str] = field(default_factory=dict)
    _pending: dict[str, str] = field(default_factory=dict)  # stored, not yet committed

    def model_for(self, role: str, step: int, stage: str, unit: str) -> JournaledModel:
        """The role's model for one unit of work, behind the call journal."""
        inner = self.target if role == "target" else self.optimizer
        return JournaledModel(inner, self.ledger, self.run_id, role, step, stage, unit, self.clock)

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
