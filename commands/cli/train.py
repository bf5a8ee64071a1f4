"""Commands that create and advance training runs: init, step, run, status, fork."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from skillopt.commands.cli.common import (
    DEFAULT_DB,
    DbOpt,
    JsonOpt,
    RunOpt,
    blob_refs,
    cli_errors,
    emit_json,
    event_line,
    open_ledger,
    open_run,
    print_status,
)
from skillopt.commands.errors import InputError
from skillopt.ledger.urls import masked_url


@cli_errors
def init(
    config_path: Annotated[Path, typer.Argument(metavar="CONFIG", help="YAML config file.")],
    db: DbOpt = DEFAULT_DB,
    name: Annotated[
        str | None, typer.Option(help="Run name (default: the config file's stem).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: --set train.num_epochs=3 (repeatable)."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Create a run from a config file and record run.created. Nothing is executed yet.
    Prints the split sizes it recorded and warns about splits too small to trust."""
    from skillopt.commands.api import prepare_run, record_run

    prepared = prepare_run(config_path, name, set_ or [])  # every input checked: no file yet
    stored = record_run(open_ledger(db, create=True), prepared)
    for line in prepared.warnings:
        sys.stderr.write(f"warning: {line}\n")
    p, sizes = prepared, prepared.sizes
    if json_:
        emit_json(
            {
                "run": p.run_name,
                "id": p.run_id,
                "db": masked_url(db),  # a URL's password is never printed
                "sizes": sizes,
                "warnings": p.warnings,
                "event": stored.as_json(),
            }
        )
        return
    split_line = ", ".join(f"{sizes[s]} {s}" for s in ("train", "selection", "test"))
    print(
        f"created run {p.run_name!r} (id {p.run_id}) in {masked_url(db)}: {split_line} items; "
        f"next: skillopt run --db {masked_url(db)} --run {p.run_name}"
    )


@cli_errors
def step(db: DbOpt = DEFAULT_DB, run: RunOpt = None, json_: JsonOpt = False) -> None:
    """Execute exactly one stage of the run, then stop; print the events it appended."""
    from skillopt.commands.context import Progress
    from skillopt.commands.runner import load_state, make_context, run_stage

    ledger, row = open_run(db, run)
    state = load_state(ledger, row.id)
    if state.completed is not None:
        emit_json([]) if json_ else print(f"run {row.name!r} is complete; nothing to do")
        return
    ctx = make_context(ledger, row.id, state, Progress())
    try:
        result = run_stage(ledger, row.id, state, ctx)
    finally:
        ctx.close()
    assert result is not None
    if json_:
        emit_json([e.as_json() for e in result.appended])
        return
    print(f"stage {result.command.stage}: appended {len(result.appended)} event(s)")
    for e in result.appended:
        print(event_line(e))


@cli_errors
def run_cmd(
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    max_stages: Annotated[int | None, typer.Option(help="Stop after this many stages.")] = None,
    max_usd: Annotated[float | None, typer.Option(help="Set the cost budget from here on.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Set the token budget from here on.")
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No line per stage (errors still print).")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Run stages until the run is done (or --max-stages). Resumes exactly where the ledger ends.
    Stops before a stage once a budget is spent; --max-usd/--max-tokens raise it (recorded).
    After each stage one line says where the run is, what the stage decided, the best score,
    the spending (and budget), unusable replies and the time left; on a terminal with a
    progress bar for per-item stages, elsewhere as plain lines (nohup, CI, notebooks)."""
    from rich.console import Console  # imported here: commands without progress stay fast

    from skillopt.commands.api import run_to_end
    from skillopt.commands.clock import stamp_seconds
    from skillopt.commands.context import Progress
    from skillopt.commands.progress import RichProgress
    from skillopt.commands.runner import StageResult, load_state
    from skillopt.machine.reports.progress import STEP_BOUNDARIES, eta_seconds, progress_line
    from skillopt.machine.reports.views import status_view

    ledger, row = open_run(db, run)
    state = load_state(ledger, row.id)
    if max_usd is not None or max_tokens is not None:
        state = _set_budget(ledger, row.id, state, max_usd, max_tokens)
    tty = sys.stdout.isatty() and not json_
    console = Console(highlight=False)
    # the ETA: from the recorded times of the steps' ends
    times = [stamp_seconds(t) for t in ledger.stamps(row.id, STEP_BOUNDARIES)]

    def shown(result: StageResult) -> None:
        times.extend(
            stamp_seconds(e.recorded_at) for e in result.appended if e.type in STEP_BOUNDARIES
        )
        if json_ or quiet:
            return
        s = result.state
        eta = eta_seconds(times, s.total_steps - s.steps_completed)
        step = getattr(result.command, "step", None)
        events = [e.event() for e in result.appended]
        line = progress_line(s, result.command.stage, step, events, eta)
        if tty:
            console.print(f"[dim]{line}[/]")
        else:
            print(line, flush=True)

    progress = RichProgress(console) if tty else Progress()
    state = run_to_end(ledger, row, progress, max_stages, state, shown)
    view = status_view(state)
    if json_:
        emit_json(view)
    elif tty:
        print_status(view)


def _set_budget(ledger: Any, run_id: str, state: Any, usd: float | None, tokens: int | None) -> Any:
    """Record budget.set with the new limits (a limit not given stays); the state after it."""
    from skillopt.commands.clock import utc_now
    from skillopt.commands.runner import record
    from skillopt.machine.core.events import BudgetSet
    from skillopt.machine.decisions.spending import limits

    if (usd is not None and usd < 0) or (tokens is not None and tokens < 0):
        raise InputError("--max-usd and --max-tokens must be >= 0")
    if usd is not None and any(
        getattr(state.cfg.models, r).prices is None for r in ("target", "optimizer")
    ):
        raise InputError("--max-usd needs prices for both roles (models.<role>.prices)")
    current_usd, current_tokens = limits(state)
    new = BudgetSet(
        max_usd=current_usd if usd is None else usd,
        max_tokens=current_tokens if tokens is None else tokens,
    )
    if (new.max_usd, new.max_tokens) == (current_usd, current_tokens):
        return state
    return record(ledger, run_id, state, [new], utc_now())[1]


@cli_errors
def status(
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    fold: Annotated[
        bool,
        typer.Option(
            "--fold",
            help="Fold the run's events even when a status view of its last one is stored.",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Where the run stands: phase, epoch, step, scores, skill hashes, spending.

    Every append stores the run's status view beside its events, so this answers without
    folding the run; without a view of the run's last event (a ledger of an older skillopt,
    or --fold) it folds the events. Both ways print the same."""
    # The fast path reads the view with sqlite3 alone: no SQLAlchemy, no core (seconds saved).
    from skillopt.ledger.stored_status import stored_status
    from skillopt.machine.reports.status_format import STATUS_FORMAT

    view = None if fold else stored_status(db, run, STATUS_FORMAT)
    if view is None:
        from skillopt.commands.runner import fold as fold_events
        from skillopt.commands.runner import status_of

        ledger, row = open_run(db, run)
        stored = ledger.read(row.id)
        state = fold_events(stored)
        if ledger.read_only and not fold and stored:
            _say_if_view_stale(ledger, row, stored[-1].seq, stored[-1].hash, STATUS_FORMAT)
        # printed as a stored view reads back, so that both ways print the same bytes
        view = json.loads(status_of(state).json)
    emit_json(view) if json_ else print_status(view)


def _say_if_view_stale(ledger: Any, row: Any, seq: int, hash_: str, format_: int) -> None:
    """On a ledger this process cannot write, a status view that does not describe the run's
    last event stays so (status folds instead, and cannot store the new view): say so once."""
    stored = ledger.status_view(row.id)
    if stored is not None and (stored.seq, stored.hash, stored.format) == (seq, hash_, format_):
        return
    what = "no status view" if stored is None else f"a status view of seq {stored.seq}"
    sys.stderr.write(
        f"note: run {row.name} has {what}, and ledger {ledger.location} is read-only here: "
        f"status folded its {seq} events instead (`skillopt db refresh-status` where it is "
        "writable stores a current view)\n"
    )


@cli_errors
def fork(
    at: Annotated[int, typer.Option("--at", help="Copy the origin's events up to this seq.")],
    name: Annotated[str, typer.Option("--name", help="Name of the new run.")],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Change a setting from here on: --set train.num_epochs=4 (repeatable)."
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """A what-if run: a new run whose ledger starts with the origin's events up to SEQ (copied,
    re-chained), then continues under changed settings. The shared prefix costs nothing.
    Settings the prefix already used (data, batches, seeds, the gate's scale) cannot change."""
    from skillopt.commands.clock import utc_now
    from skillopt.commands.runner import fold, status_of
    from skillopt.machine.core.canonical import canonical_json, sha256_text
    from skillopt.machine.core.events import ForkOrigin
    from skillopt.machine.decisions.fork import changes, fork_problems
    from skillopt.machine.loop.reducer import reduce

    ledger, row = open_run(db, run)
    stored = ledger.read(row.id)
    if not 1 <= at <= len(stored):
        raise InputError(f"--at {at}: run {row.name} has events 1..{len(stored)}")
    prefix = stored[:at]
    state = fold(prefix)
    old = dict(state.config_data)
    config, new = _changed_config(old, set_ or [])
    diff = changes(old, new)
    problems = fork_problems(state, config, diff)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"fork refused: {problems[0]}{more}")
    origin = ForkOrigin(run_name=row.name, run_id=row.id, seq=at)
    events, stamps = _forked_events(ledger, prefix, name, origin, diff, new)
    run_id = "r" + sha256_text(canonical_json([name, old, row.id, at]))[:12]
    ledger.create_run(run_id, name, new, utc_now(), events[0], status=status_of(reduce(events[:1])))
    ledger.append(run_id, 1, events[1:], stamps, status=status_of(reduce(events)))
    if json_:
        emit_json({"run": name, "id": run_id, "forked_from": origin.model_dump(), "changes": diff})
    else:
        changed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items()) or "no settings"
        print(
            f"forked run {name!r} (id {run_id}) from {row.name} at seq {at}; changed {changed}; "
            f"next: skillopt run --db {masked_url(db)} --run {name}"
        )


def _changed_config(old: dict[str, Any], assignments: list[str]) -> tuple[Any, dict[str, Any]]:
    """(config, its recorded data): the origin's settings with the --set assignments applied."""
    from skillopt.commands.api import refuse_recorded_secrets
    from skillopt.machine.config.compat import canonical_assignment, redact
    from skillopt.machine.config.schema import (
        ConfigError,
        apply_override,
        recorded_config,
        validate_config,
    )

    try:
        # A run recorded before a mechanism existed keeps it off (see recorded_config).
        data: dict[str, Any] = recorded_config(old).model_dump(mode="json")
        for assignment in assignments:
            data = apply_override(data, canonical_assignment(assignment))
        data, hidden = redact(data)
        for where in hidden:
            sys.stderr.write(f"warning: {where}: a secret-looking value is never recorded\n")
        refuse_recorded_secrets(data)
        config = validate_config(data)
        return config, config.model_dump(mode="json")
    except ConfigError as exc:
        raise InputError(f"--set: {exc}") from None


def _forked_events(
    ledger: Any,
    prefix: list[Any],
    name: str,
    origin: Any,
    diff: dict[str, Any],
    new: dict[str, Any],
) -> tuple[list[Any], list[str]]:
    """The fork's events and the stamps of all but the first: a run.created naming the origin,
    the prefix's other events as recorded, a settings.changed if anything changed. They must
    verify as a run of their own, or the fork is refused."""
    from skillopt.commands.clock import utc_now
    from skillopt.machine.core.events import RunCreated, SettingsChanged
    from skillopt.machine.verify import verify_events

    first = RunCreated.model_validate(
        prefix[0].payload | {"run_name": name, "forked_from": origin.model_dump()}
    )
    events = [first, *(e.event() for e in prefix[1:])]
    stamps = [e.recorded_at for e in prefix[1:]]
    if diff:
        events.append(SettingsChanged(changes=diff, config=new))
        stamps.append(utc_now())
    hashes = {h for e in events for h in blob_refs(e.payload())}
    outcome = verify_events(list(enumerate(events, start=1)), ledger.get_blobs(hashes))
    if outcome.problem is not None:
        raise InputError(f"fork refused: seq {outcome.problem[0]}: {outcome.problem[1]}")
    return events, stamps
