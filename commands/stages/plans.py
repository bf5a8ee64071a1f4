"""Stages that plan: the dataset snapshot, each epoch's batches, the epoch boundary, the end."""

from __future__ import annotations

import math
import random

from commands.context import StageContext, fingerprint, split_items
from commands.errors import InputError
from commands.stages import HandlerGen
from machine import events as ev
from machine import transitions as tr
from machine.canonical import derive_seed
from machine.state import TrainerState


def load_dataset(cmd: tr.LoadDataset, state: TrainerState, ctx: StageContext) -> HandlerGen:
    cfg = state.cfg
    items = split_items(ctx.env, cfg)
    train_size = len(items["train"])
    if cfg.train.train_size and cfg.train.train_size != train_size:
        raise InputError(
            f"train.train_size is {cfg.train.train_size} but the train split has {train_size} items"
        )
    steps_per_epoch = math.ceil(train_size / (cfg.train.batch_size * cfg.train.accumulation))
    yield ev.DatasetLoaded(
        env=ctx.env.name,
        train=[i.id for i in items["train"]],
        selection=[i.id for i in items["selection"]],
        test=[i.id for i in items["test"]],
        task_types=list(ctx.env.task_types()),
        fingerprints={split: fingerprint(rows) for split, rows in items.items()},
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * cfg.train.num_epochs,
    )


def plan_epoch(cmd: tr.PlanEpoch, state: TrainerState, ctx: StageContext) -> HandlerGen:
    """One shuffled pass over train, cut into steps x accumulation batches; empty tails refilled."""
    assert state.dataset is not None
    cfg = state.cfg.train
    seed = derive_seed(cfg.seed, cmd.epoch, 0, "epoch_plan")
    order = list(state.dataset.train)
    random.Random(seed).shuffle(order)
    spe = state.dataset.steps_per_epoch
    batches = [
        order[i * cfg.batch_size : (i + 1) * cfg.batch_size] for i in range(spe * cfg.accumulation)
    ]
    batches = [b or order[: cfg.batch_size] for b in batches]
    steps = [batches[s * cfg.accumulation : (s + 1) * cfg.accumulation] for s in range(spe)]
    yield ev.EpochPlanned(
        epoch=cmd.epoch, first_step=(cmd.epoch - 1) * spe + 1, seed=seed, steps=steps
    )


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
