"""The dataset snapshot (what the environment holds), and the shell of the plan and completion
stages machine/stages/plans decides: each epoch's batches, the epoch boundary, the end."""

from __future__ import annotations

from typing import Any

from skillopt.commands.context import StageContext, fingerprint, split_items
from skillopt.commands.stages import HandlerGen
from skillopt.commands.stages.calls import decide
from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.plans import steps_per_epoch
from skillopt.machine.loop import transitions as tr
from skillopt.machine.stages import plans


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
    yield decide(ctx, plans.plan_epoch(cmd, state))


def complete_epoch(cmd: tr.CompleteEpoch, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield decide(ctx, plans.complete_epoch(cmd, state))


def complete_run(cmd: tr.CompleteRun, state: TrainerState, ctx: StageContext) -> HandlerGen:
    yield decide(ctx, plans.complete_run(cmd, state))
