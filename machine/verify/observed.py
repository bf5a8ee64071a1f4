"""Checks of observed events: what the outside world or the user said is recorded as observed
(by hash), so verify checks only that it is consistent with the config and the ledger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from skillopt.machine.config.schema import validate_config
from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions import reuse
from skillopt.machine.decisions.fork import changes, fork_problems
from skillopt.machine.decisions.plans import steps_per_epoch
from skillopt.machine.verify.common import Mismatch, Texts, blob, same


def _run_created(s: TrainerState, e: ev.RunCreated, texts: Texts) -> str:
    blob(texts, e.initial_skill_hash, "initial skill")
    return "blobs"


def _dataset(s: TrainerState, e: ev.DatasetLoaded, texts: Texts) -> str:
    t = s.cfg.train
    spe = steps_per_epoch(len(e.train), t.batch_size, t.accumulation)
    same("steps per epoch, total", (e.steps_per_epoch, e.total_steps), (spe, spe * t.num_epochs))
    c = s.cfg
    same("environment", e.env, c.env.name)
    limits = {"train": 0, "selection": c.evaluation.sel_env_num, "test": c.evaluation.test_env_num}
    needed = {"train", "selection"} | ({"test"} if c.evaluation.eval_test else set())
    for name, ids in (("train", e.train), ("selection", e.selection), ("test", e.test)):
        if len(set(ids)) != len(ids):
            raise Mismatch(f"duplicate item ids in {name}")
        if name in needed and not ids:
            raise Mismatch(f"the {name} split is empty")
        if limits[name] and len(ids) > limits[name]:
            raise Mismatch(f"{len(ids)} {name} items over the configured {limits[name]}")
    if t.train_size and t.train_size != len(e.train):
        raise Mismatch(f"train.train_size is {t.train_size}, the split has {len(e.train)}")
    return "plans"


def _rollout(s: TrainerState, e: ev.RolloutScored, texts: Texts) -> str:
    blob(texts, e.trajectory_hash, f"trajectory of {e.item_id}")
    due = reuse.reused(s, e.phase, e.step, e.skill_hash, e.item_id)
    if e.reuse_of is not None:
        if due is None:
            raise Mismatch(
                f"{e.phase} rollout of {e.item_id} is a reuse, but no recorded "
                f"rollout of skill {e.skill_hash[:12]} on that item may be reused here"
            )
        recorded, derived = e.payload(), due.payload()
        wrong = sorted(
            k for k in recorded.keys() | derived.keys() if recorded.get(k) != derived.get(k)
        )
        if wrong:
            raise Mismatch(
                f"{e.phase} rollout of {e.item_id}, a reuse: {wrong[0]}: "
                f"recorded {recorded.get(wrong[0])!r}, re-derived {derived.get(wrong[0])!r}"
            )
    elif due is not None:
        raise Mismatch(
            f"{e.phase} rollout of {e.item_id} paid for again: the recorded rollout of the same "
            f"skill ({reuse.named(due.reuse_of)}) is due for reuse"
        )
    return "blobs"


def _settings(s: TrainerState, e: ev.SettingsChanged, texts: Texts) -> str:
    same("changes", e.changes, changes(dict(s.config_data), e.config))
    try:
        config = validate_config(e.config)
    except ValueError as exc:
        raise Mismatch(f"new config does not validate: {exc}") from None
    problems = fork_problems(s, config, e.changes)
    if problems:
        raise Mismatch("; ".join(problems))
    return "forks"


def _stage_graph_only(s: TrainerState, e: ev.Event, texts: Texts) -> str:
    """Failures, budget changes and budget stops: the stage graph's check is the whole check."""
    return ""


Check = Callable[[TrainerState, Any, Texts], str]
OBSERVED_CHECKS: dict[type[ev.Event], Check] = {
    ev.RunCreated: _run_created,
    ev.SettingsChanged: _settings,
    ev.DatasetLoaded: _dataset,
    ev.RolloutScored: _rollout,
    ev.StageFailed: _stage_graph_only,
    ev.BudgetSet: _stage_graph_only,
    ev.BudgetExhausted: _stage_graph_only,
}
