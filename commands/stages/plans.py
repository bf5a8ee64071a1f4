"""Stages that plan: the dataset snapshot, each epoch's batches, the epoch boundary, the end."""

from __future__ import annotations

from typing import Any

from commands.context import StageContext, fingerprint, split_items
from commands.stages import HandlerGen
from machine import events as ev
from machine import transitions as tr
from machine.plans import epoch_seed, steps_per_epoch
from machine.plans import plan_epoch as epoch_batches
from machine.state import TrainerState


def load_dataset(cmd: tr.LoadDataset, state: TrainerState, ctx: StageContext) -> HandlerGen:
    cfg = state.cfg
    items = split_items(ctx.env, cfg)
    train_size = len(items["train"])
    spe = steps_per_epoch(train_size, cfg.train.batch_size, cfg.train.accumulation)
    yield ev.DatasetLoaded(
        env=ctx.env.name,
        train=[i.id for i in items["train"]],
        selection=[i.id for i in items["selection"]],
        test=[i.id for i in items["test"]],
        task_types=list(ctx.env.task_types()),
        fingerprints={split: fingerprint(rows) for split, rows in items.items()},
        steps_per_epoch=spe,
        total_steps=spe * cfg.train.num_epochs,
        source=_split_manifest(ctx),
    )


def _split_manifest(ctx: StageContext) -> dict[str, Any] | None:
    """The environment's record of where its items came from (optional in the protocol)."""
    manifest = getattr(ctx.env, "split_manifest", None)
    return dict(manifest()) if callable(manifest) else None


def plan_epoch(cmd: tr.PlanEpoch, state: TrainerState, ctx: StageContext) -> HandlerGen:
    assert state.dataset is not None
    cfg = state.cfg.train
    seed = epoch_seed(cfg.seed, cmd.epoch)
    steps = epoch_batches(state.dataset.train, seed, cfg.batch_size, cfg.accumulation)
    first = (cmd.epoch - 1) * state.dataset.steps_per_epoch + 1
    yield ev.EpochPlanned(epoch=cmd.epoch, first_step=first, seed=seed, steps=steps)


def complete_epoch(cmd: tr.CompleteEpoch, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield ev.EpochCompleted(
        epoch=cmd.epoch,
        last_step=state.steps_completed,
        current_hash=state.current_hash,
        best_hash=state.best_hash,
        best_score=state.best_score,
    )


def complete_run(cmd: tr.CompleteRun, state: TrainerState, ctx: StageContext) -> HandlerGen:
    totals = state.totals()
    yield ev.RunCompleted(
        best_hash=state.best_hash,
        best_score=state.best_score,
        best_step=state.best_step,
        final_hash=state.current_hash,
        **totals,
    )
