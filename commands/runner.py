"""The runner: ask the transition table for the next stage, run its handler, append what it
yields (optimistic concurrency on the last seq), fold it into the state, repeat."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from skillopt.commands.clock import Clock, utc_now
from skillopt.commands.context import (
    ConfigPort,
    LedgerFile,
    LedgerGone,
    Progress,
    StageContext,
    build_adapters,
    build_judge,
    fingerprint,
    split_items,
)
from skillopt.commands.errors import InputError, RunFailed
from skillopt.commands.executors import ExecutorLost, make_executor, require_executor
from skillopt.commands.stages import (
    HandlerGen,
    aggregate,
    appendix,
    epoch,
    reflect,
    rollouts,
    update,
)
from skillopt.commands.stages import dataset as plans
from skillopt.ledger.errors import ConflictError, CorruptEvent, LedgerWriteError
from skillopt.ledger.events import StoredEvent
from skillopt.ledger.ledger import Ledger
from skillopt.ledger.views import StatusView
from skillopt.machine.core.canonical import canonical_json
from skillopt.machine.core.events import BudgetExhausted, Event, StageFailed
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.health import unusable_stop
from skillopt.machine.decisions.spending import exhausted, limits, spent
from skillopt.machine.loop import transitions as tr
from skillopt.machine.loop.reducer import apply, reduce
from skillopt.machine.reports.status_format import STATUS_FORMAT
from skillopt.machine.reports.views import status_view

Handler = Callable[[tr.Command, TrainerState, StageContext], HandlerGen]

HANDLERS: dict[type[tr.Command], Handler] = {
    tr.LoadDataset: plans.load_dataset,
    tr.EvaluateBaseline: rollouts.evaluate_baseline,
    tr.PlanEpoch: plans.plan_epoch,
    tr.RolloutTrain: rollouts.rollout_train,
    tr.PlanReflection: reflect.plan_reflection,
    tr.Reflect: reflect.reflect,
    tr.SkipStep: update.skip_step,
    tr.Merge: aggregate.merge,
    tr.Select: update.select,
    tr.Update: update.update,
    tr.EvaluateCandidate: rollouts.evaluate_candidate,
    tr.EvaluateReference: rollouts.evaluate_reference,
    tr.Gate: update.gate,
    tr.CompleteStep: update.complete_step,
    tr.FlushAppendix: appendix.flush_appendix,
    tr.GateUpdate: epoch.gate_update,
    tr.PlanReview: epoch.plan_review,
    tr.ReviewRollout: epoch.review_rollout,
    tr.SlowUpdate: epoch.slow_update,
    tr.MetaSkill: epoch.meta_skill,
    tr.CompleteEpoch: plans.complete_epoch,
    tr.FinalSelection: rollouts.final_selection,
    tr.FinalTest: rollouts.final_test,
    tr.CompleteRun: plans.complete_run,
}  # type: ignore[dict-item]


def load_state(ledger: Ledger, run_id: str, until: int | None = None) -> TrainerState:
    with paused_gc():
        stored = ledger.read(run_id, until)
        if not stored:  # a run's row is written with its first event: this one lost them
            raise CorruptEvent(run_id, 1, "the run has no events")
        return fold(stored)


def fold(stored: list[StoredEvent]) -> TrainerState:
    """The state of a run; an event that does not decode or fold is named by its seq."""
    state = TrainerState()
    with paused_gc():
        for e in stored:
            if e.seq != state.seq + 1:  # the schema keeps runs gapless; a copy may not
                raise CorruptEvent(e.run_id, e.seq, f"follows seq {state.seq}: events have a gap")
            event = e.event()
            try:
                state = apply(state, event)
            except Exception as exc:
                raise CorruptEvent(
                    e.run_id, e.seq, f"{e.type} does not fold: {type(exc).__name__}: {exc}"
                ) from None
    return state


def status_of(state: TrainerState) -> StatusView:
    return StatusView(STATUS_FORMAT, canonical_json(status_view(state)))


def record(
    ledger: Ledger,
    run_id: str,
    state: TrainerState,
    events: list[Event],
    recorded_at: str,
    texts: list[str] | None = None,
) -> tuple[list[StoredEvent], TrainerState]:
    """Append `events` to the run at `state` and fold them in. The status view of the new
    state goes into the same transaction, so `skillopt status` can answer without a fold."""
    folded = reduce(events, state)
    stored = ledger.append(run_id, state.seq, events, recorded_at, texts or (), status_of(folded))
    return stored, folded


@contextmanager
def paused_gc() -> Iterator[None]:
    """Reading, decoding and folding a ledger allocate much and make no reference cycles
    (reference counting frees their garbage); the cyclic collector's full scans of the
    growing heap would cost a fifth of a long fold (benchmarks/replay.py). Paused meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def make_context(
    ledger: Ledger, run_id: str, state: TrainerState, progress: Progress, clock: Clock = utc_now
) -> StageContext:
    if ledger.read_only:  # before any model is called: its answer could not be recorded
        raise LedgerWriteError(
            f"ledger {ledger.location} is read-only here (its file, directory or mount cannot "
            "be written): a run needs to append to it; nothing was called or recorded"
        )
    config = state.cfg
    require_executor(config)  # before anything is built or called
    env, target, optimizer = build_adapters(config)
    items = split_items(env, config)
    if state.dataset is not None:
        for split, rows in items.items():
            if fingerprint(rows) != state.dataset.fingerprints.get(split):
                raise InputError(
                    f"the {split} split of environment {env.name!r} changed since this run "
                    "started; restore it, or start a new run"
                )
    by_id = {split: {i.id: i for i in rows} for split, rows in items.items()}
    judge = build_judge(config)
    ctx = StageContext(
        config,
        env,
        target,
        optimizer,
        ledger,
        by_id,
        progress,
        run_id,
        clock,
        judge,
        LedgerFile.of(ledger),
    )
    ctx.executor = make_executor(config, ctx, ConfigPort(config, run_id), ctx.calls)
    return ctx


@dataclass
class StageResult:
    command: tr.Command
    state: TrainerState
    appended: list[StoredEvent] = field(default_factory=list)


def _step_of(command: tr.Command) -> int:
    return int(getattr(command, "step", 0))


def run_stage(
    ledger: Ledger, run_id: str, state: TrainerState, ctx: StageContext, clock: Clock = utc_now
) -> StageResult | None:
    """Execute exactly one stage. Returns None when the run is done."""
    command = tr.next_command(state)
    if command is None:
        return None
    if (why := exhausted(state)) is not None:
        cost, tokens = spent(state)
        usd, tok = limits(state)
        stop = BudgetExhausted(
            stage=command.stage, spent_usd=cost, spent_tokens=tokens, max_usd=usd, max_tokens=tok
        )
        if state.last_stop != stop:  # the same stop again adds nothing to the record
            record(ledger, run_id, state, [stop], clock())
        raise RunFailed(
            f"budget exhausted before stage {command.stage}: {why}; raise it with "
            "`skillopt run --max-usd X` or `--max-tokens N` to continue"
        )
    if (why := unusable_stop(state)) is not None:
        _stop_unusable(ledger, run_id, state, command, why, clock)
    result = StageResult(command, state)
    gen = HANDLERS[type(command)](command, state, ctx)
    try:
        batch = next(gen)
        while True:
            events: list[Event] = batch if isinstance(batch, list) else [batch]
            texts = ctx.take_pending()  # the blobs these events refer to, in one commit
            if ctx.ledger_file is not None:
                ctx.ledger_file.check()
            stored, result.state = record(ledger, run_id, result.state, events, clock(), texts)
            result.appended += stored
            batch = gen.send(result.state)
    except StopIteration:
        return result
    except ConflictError as exc:
        raise RunFailed(
            f"{exc}; the events appended so far are kept; run again to continue from them"
        ) from None
    except LedgerGone as exc:  # nothing may be recorded: not even a stage.failed
        raise RunFailed(str(exc)) from None
    except ExecutorLost as exc:  # not the stage's failure: running again resumes it
        raise RunFailed(str(exc)) from None
    except LedgerWriteError as exc:  # recording a stage.failed would be refused too
        raise RunFailed(f"{exc}; `skillopt run` continues once it can write") from None
    except InputError as exc:
        seq = _record_failure(ledger, run_id, result, command, exc, clock)
        raise InputError(
            f"{exc} (stage {command.stage}, recorded as stage.failed at seq {seq})"
        ) from None
    except Exception as exc:
        seq = _record_failure(ledger, run_id, result, command, exc, clock)
        raise RunFailed(
            f"stage {command.stage} failed: {type(exc).__name__}: {exc} "
            f"(recorded as stage.failed at seq {seq}; `skillopt run` retries it)"
        ) from exc
    finally:
        gen.close()


def _stop_unusable(
    ledger: Ledger, run_id: str, state: TrainerState, command: tr.Command, why: str, clock: Clock
) -> None:
    """A run whose optimizer replies are all unusable trains nothing: record why (once) as the
    next stage's failure and stop; a fork with the fix (settings.changed) goes on."""
    failed = StageFailed(
        stage=command.stage, step=_step_of(command), error_type="UnusableReplies", message=why
    )
    if state.last_failure != failed:
        record(ledger, run_id, state, [failed], clock())
    raise RunFailed(why)


def _record_failure(
    ledger: Ledger,
    run_id: str,
    result: StageResult,
    command: tr.Command,
    exc: Exception,
    clock: Clock,
) -> int:
    failed = StageFailed(
        stage=command.stage,
        step=_step_of(command),
        error_type=type(exc).__name__,
        message=str(exc)[:2000],
    )
    folded = reduce([failed], result.state)
    try:
        view = status_of(folded)
    except Exception:  # the failure recorded may be the view's own; status folds meanwhile
        view = None
    stored = ledger.append(run_id, result.state.seq, [failed], clock(), status=view)
    result.state = folded
    result.appended += stored
    return stored[0].seq
