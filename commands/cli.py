"""The `skillopt` command line. Exit codes: 0 ok, 1 a check or the run failed, 2 bad input."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from skillopt.commands.bench import bench_app
from skillopt.commands.errors import CheckFailed, InputError, RunFailed
from skillopt.ledger.errors import CorruptEvent, LedgerError, LedgerWriteError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    help=(
        "Train skill documents for frozen LLMs. Every stage of a run is an event in a ledger "
        "(SQLite by default): runs resume exactly after a crash, and reports replay from the "
        "ledger alone.\n\nStart with: skillopt init examples/sim.yaml --name demo; "
        "then skillopt run; then skillopt report --md.\n\n"
        "Exit codes: 0 ok; 1 a check failed or the run failed; 2 bad input (config, file, "
        "name, dataset, ledger)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Ledger maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
skill_app = typer.Typer(
    help="Skill versions of a run. REF: initial, best, current, final, step:N (current after "
    "step N), candidate:N (built at step N), or a hash prefix.",
    no_args_is_help=True,
)
app.add_typer(skill_app, name="skill")
app.add_typer(bench_app, name="bench")


DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="SKILLOPT_DB",
        help="Ledger: a SQLite file path or an SQLAlchemy URL (env SKILLOPT_DB).",
    ),
]
RunOpt = Annotated[
    str | None, typer.Option("--run", help="Run name or id (default: the most recent run).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
DEFAULT_DB = "skillopt.db"
_opened: list[Any] = []  # ledgers opened by the running command, closed when it ends


def cli_errors(fn: F) -> F:
    """Map our exceptions to one-line messages and exit codes."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (InputError, LedgerError) as exc:
            sys.stderr.write(f"error: {exc}\n")
            raise typer.Exit(2) from None
        except (CheckFailed, RunFailed, CorruptEvent, LedgerWriteError) as exc:
            sys.stderr.write(f"failed: {exc}\n")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            sys.stderr.write(
                "interrupted: every event recorded so far is kept; `skillopt run` continues\n"
            )
            raise typer.Exit(130) from None
        finally:
            while _opened:
                _opened.pop().close()

    return wrapper  # type: ignore[return-value]


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


def load_config_file(path: Path, overrides: list[str]) -> tuple[Any, dict[str, Any]]:
    """Our format or the reference trainer's, with `_base_` and `--set` (commands/config_files)."""
    from skillopt.commands.config_files import load_config

    loaded = load_config(path, overrides)
    return loaded.config, loaded.data


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None


def non_finite(value: Any, where: str = "") -> str | None:
    """The key path of the first NaN or infinity (or a None left by one) in option values."""
    import math

    if isinstance(value, dict):
        for key, inner in value.items():
            if found := non_finite(inner, f"{where}.{key}" if where else str(key)):
                return found
    elif isinstance(value, float) and not math.isfinite(value):
        return where
    return None


@app.command()
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
    """Create a run from a config file and record run.created. Nothing is executed yet."""
    from skillopt.commands.clock import utc_now
    from skillopt.commands.config_files import load_config
    from skillopt.commands.context import build_adapters, split_items
    from skillopt.commands.runner import status_of
    from skillopt.ledger.store import Ledger
    from skillopt.machine.core.canonical import canonical_json, sha256_text
    from skillopt.machine.core.events import RunCreated
    from skillopt.machine.loop.reducer import reduce

    loaded = load_config(config_path, set_ or [])
    config, data = _resolve_data_paths(loaded.config, loaded.data, config_path)
    skill_path = (config_path.parent / config.env.skill_init).resolve()
    if not skill_path.is_file():
        raise InputError(f"env.skill_init: initial skill file {skill_path} not found")
    skill = read_text(skill_path, "initial skill file")
    env, _, _ = build_adapters(config)
    split_items(env, config)
    run_name = name or config_path.stem
    run_id = "r" + sha256_text(canonical_json([run_name, data]))[:12]
    ledger = _track(Ledger.open(db, create=True))
    skill_hash = ledger.put_blob(skill)
    created = RunCreated(
        run_name=run_name,
        config=data,
        config_sha256=sha256_text(config_path.read_text("utf-8")),
        initial_skill_hash=skill_hash,
        skillopt_version=_version(),
        warnings=loaded.warnings,
    )
    stored = ledger.create_run(
        run_id, run_name, data, utc_now(), created, status=status_of(reduce([created]))
    )
    for line in loaded.warnings:
        sys.stderr.write(f"warning: {line}\n")
    if json_:
        emit_json({"run": run_name, "id": run_id, "db": db, "event": stored.as_json()})
    else:
        print(
            f"created run {run_name!r} (id {run_id}) in {db}; next: skillopt run --db {db} --run {run_name}"
        )


def _resolve_data_paths(config: Any, data: dict[str, Any], config_path: Path) -> tuple[Any, Any]:
    """Data paths are relative to the config file; the run records them absolute so that a
    resume from another directory reads the same files."""
    from skillopt.machine.config.schema import validate_config

    env = dict(data["env"])
    for key in ("split_dir", "data_path"):
        if env.get(key) is None:
            continue
        path = (config_path.parent / env[key]).resolve()
        if not path.exists():
            raise InputError(f"env.{key}: {path} not found")
        env[key] = str(path)
    data = {**data, "env": env}
    return validate_config(data), data


def _track(ledger: Any) -> Any:
    _opened.append(ledger)
    return ledger


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("skillopt")
    except PackageNotFoundError:
        return "0+unknown"


def _open(db: str, run: str | None, bench_ok: bool = False) -> tuple[Any, Any]:
    """The ledger and a run (default: the most recent training run). A bench run (`skillopt
    bench`) has no trainer state: only commands that read any run pass bench_ok."""
    from skillopt.ledger.store import Ledger

    ledger = _track(Ledger.open(db))
    row = ledger.find_run(run, None if bench_ok else "train")
    if row.kind == "bench" and not bench_ok:
        raise InputError(
            f"run {row.name} is a bench run, not a training run; its report: skillopt bench "
            f"closed-loop --name {row.name} (same options); its events: skillopt events"
        )
    return ledger, row


def _event_line(e: Any) -> str:
    p = e.payload
    bits = [
        f"{k}={p[k]}"
        for k in (
            "step",
            "phase",
            "item_id",
            "minibatch_id",
            "action",
            "reason",
            "hard",
            "gate_score",
            "role",
        )
        if k in p
    ]
    return f"{e.seq:>6}  {e.type:<20} {' '.join(bits)}"


@app.command()
@cli_errors
def step(db: DbOpt = DEFAULT_DB, run: RunOpt = None, json_: JsonOpt = False) -> None:
    """Execute exactly one stage of the run, then stop; print the events it appended."""
    from skillopt.commands.context import Progress
    from skillopt.commands.runner import load_state, make_context, run_stage

    ledger, row = _open(db, run)
    state = load_state(ledger, row.id)
    if state.completed is not None:
        emit_json([]) if json_ else print(f"run {row.name!r} is complete; nothing to do")
        return
    result = run_stage(ledger, row.id, state, make_context(ledger, row.id, state, Progress()))
    assert result is not None
    if json_:
        emit_json([e.as_json() for e in result.appended])
        return
    print(f"stage {result.command.stage}: appended {len(result.appended)} event(s)")
    for e in result.appended:
        print(_event_line(e))


@app.command(name="run")
@cli_errors
def run_cmd(
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    max_stages: Annotated[int | None, typer.Option(help="Stop after this many stages.")] = None,
    max_usd: Annotated[float | None, typer.Option(help="Set the cost budget from here on.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Set the token budget from here on.")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Run stages until the run is done (or --max-stages). Resumes exactly where the ledger ends.
    Stops before a stage once a budget is spent; --max-usd/--max-tokens raise it (recorded)."""
    from rich.console import Console  # imported here: commands without progress stay fast

    from skillopt.commands.context import Progress
    from skillopt.commands.progress import RichProgress
    from skillopt.commands.runner import load_state, make_context, run_stage
    from skillopt.machine.reports.views import status_view

    ledger, row = _open(db, run)
    state = load_state(ledger, row.id)
    if max_usd is not None or max_tokens is not None:
        state = _set_budget(ledger, row.id, state, max_usd, max_tokens)
    tty = sys.stdout.isatty() and not json_
    console = Console(highlight=False)
    ctx = make_context(ledger, row.id, state, RichProgress(console) if tty else Progress())
    stages = 0
    while max_stages is None or stages < max_stages:
        result = run_stage(ledger, row.id, state, ctx)
        if result is None:
            break
        state, stages = result.state, stages + 1
        if tty:
            console.print(
                f"[dim]{result.command.stage:<16}[/] +{len(result.appended)} events "
                f"(seq {state.seq})"
            )
    view = status_view(state)
    if json_:
        emit_json(view)
    elif tty:
        _print_status(view)


def _set_budget(ledger: Any, run_id: str, state: Any, usd: float | None, tokens: int | None) -> Any:
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


def _print_status(view: dict[str, Any]) -> None:
    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.4f}"

    print(
        f"run {view['run']}: phase {view['phase']}, epoch {view['epoch']}, "
        f"step {view['step']}/{view['total_steps']}, {view['events']} events"
    )
    print(
        f"  current {f(view['current_score'])} ({view['current_skill_hash'][:12]})  "
        f"best {f(view['best_score'])} at step {view['best_step']} ({view['best_skill_hash'][:12]})"
    )
    for role, row in (view.get("by_role") or {}).items():
        cost = "" if row["cost"] is None else f", cost {row['cost']:.4f}"
        print(f"  {role}: {row['calls']} calls, {row['tokens']} tokens{cost}")
    if view.get("last_failure"):
        lf = view["last_failure"]
        print(f"  last failure: stage {lf['stage']}: {lf['error_type']}: {lf['message']}")


@app.command()
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
    from skillopt.ledger.stored_status import stored_status
    from skillopt.machine.reports.status_format import STATUS_FORMAT

    view = None if fold else stored_status(db, run, STATUS_FORMAT)
    if view is None:
        from skillopt.commands.runner import load_state, status_of

        ledger, row = _open(db, run)
        # printed as a stored view reads back, so that both ways print the same bytes
        view = json.loads(status_of(load_state(ledger, row.id)).json)
    emit_json(view) if json_ else _print_status(view)


@app.command()
@cli_errors
def events(
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List the run's events (seq, type, key facts)."""
    ledger, row = _open(db, run, bench_ok=True)
    rows = [e for e in ledger.read(row.id) if type_ is None or e.type == type_]
    if json_:
        emit_json([e.as_json() for e in rows])
        return
    for e in rows:
        print(_event_line(e))


@app.command()
@cli_errors
def replay(
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    until: Annotated[int | None, typer.Option(help="Fold events up to this seq only.")] = None,
    verify: Annotated[
        bool, typer.Option(help="Recompute every decision from recorded inputs.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Rebuild the state by folding the ledger's events; --verify re-derives every decision."""
    from skillopt.commands.runner import fold
    from skillopt.ledger.store import check_chain
    from skillopt.machine.reports.views import status_view
    from skillopt.machine.verify import verify_events

    ledger, row = _open(db, run)
    stored = ledger.read(row.id, until)
    problem: tuple[int, str] | None = None
    if verify:
        checks: dict[str, int] = {"hash_chain": len(stored)}
        problem = check_chain(stored)
        if problem is None:
            hashes = {h for e in stored for h in _blob_refs(e.payload)}
            try:
                decoded = [(e.seq, e.event()) for e in stored]
            except CorruptEvent as exc:
                raise CheckFailed(str(exc)) from None
            outcome = verify_events(decoded, ledger.get_blobs(hashes), row.name)
            checks |= outcome.checks
            problem = outcome.problem
        if problem is not None:
            good = [e for e in stored if e.seq < problem[0]]
            view = status_view(fold(good)) | {"verified": False, "checks": checks}
        else:
            view = status_view(fold(stored)) | {"verified": True, "checks": checks}
    else:
        view = status_view(fold(stored))
    if json_:
        emit_json(
            view | ({"problem": {"seq": problem[0], "message": problem[1]}} if problem else {})
        )
    else:
        _print_status(view)
        if verify:
            print("  checks: " + ", ".join(f"{k} {v}" for k, v in sorted(view["checks"].items())))
    if problem is not None:
        raise CheckFailed(f"run {row.name}: seq {problem[0]}: {problem[1]}")


def _blob_refs(value: Any) -> list[str]:
    """Every hash an event payload refers to (keys ending in _hash)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            if key.endswith("_hash") and isinstance(inner, str) and len(inner) == 64:
                found.append(inner)
            else:
                found += _blob_refs(inner)
    elif isinstance(value, list):
        for inner in value:
            found += _blob_refs(inner)
    return found


@app.command()
@cli_errors
def report(
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    md: Annotated[bool, typer.Option("--md", help="Markdown (the default).")] = False,
    json_: JsonOpt = False,
    html: Annotated[bool, typer.Option("--html", help="One self-contained HTML page.")] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Write here; with --md the score chart goes next to it."
        ),
    ] = None,
) -> None:
    """The run's report, rendered from the ledger alone (same ledger, same bytes)."""
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.charts import score_chart_svg
    from skillopt.machine.reports.html import render_html
    from skillopt.machine.reports.views import render_markdown, report_data

    if md + json_ + html > 1:
        raise InputError("choose one of --md, --json and --html")
    if output is not None and not output.parent.is_dir():
        raise InputError(f"-o {output}: directory {output.parent} does not exist")
    ledger, row = _open(db, run)
    state = load_state(ledger, row.id)
    data = report_data(state)
    texts = ledger.get_blobs([state.best_hash, state.initial_hash])
    chart: Path | None = None
    if json_:
        text = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    elif html:
        text = render_html(data, texts)
    else:
        chart = output.with_name(f"{output.stem}.scores.svg") if output is not None else None
        text = render_markdown(data, texts, chart.name if chart else None)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, "utf-8")
    if chart is not None:
        chart.write_text(score_chart_svg(data), "utf-8")
    sys.stderr.write(f"wrote {output}" + (f" and {chart}" if chart else "") + "\n")


@app.command()
@cli_errors
def verify(db: DbOpt = DEFAULT_DB, json_: JsonOpt = False) -> None:
    """Check the schema version, every run's hash chain and that every stored text (blob)
    hashes to its key; exit 1 naming the first bad event or blob."""
    from skillopt.ledger.store import Ledger, check_chain, head_revision

    ledger = _track(Ledger.open(db))
    revision = ledger.schema_revision()
    results = []
    first_bad: str | None = None
    for row in ledger.runs():
        events: int | None = None
        try:
            stored = ledger.read(row.id)
            events, problem = len(stored), check_chain(stored)
        except CorruptEvent as exc:  # a stored event that is not text or not JSON
            problem = (exc.seq, exc.problem)
        if problem is None and (seq := ledger.noncanonical_payload(row.id)) is not None:
            problem = (seq, "payload is not the text that was written (its value is; tampered?)")
        view = "none"
        if problem is None and row.kind == "train":
            view, problem = _check_status_view(ledger, row.id, stored)
        results.append(
            {
                "run": row.name,
                "events": events,
                "ok": problem is None,
                "seq": problem[0] if problem else None,
                "problem": problem[1] if problem else None,
                "status_view": view,
            }
        )
        if problem and first_bad is None:
            first_bad = f"run {row.name}: seq {problem[0]}: {problem[1]}"
    n_blobs, bad_blobs = ledger.check_blobs()
    if bad_blobs and first_bad is None:
        first_bad = f"blob {bad_blobs[0][:12]}: its text does not hash to its key (tampered?)"
    if revision != head_revision() and first_bad is None:
        first_bad = f"schema revision {revision} is not {head_revision()}"
    if json_:
        emit_json(
            {
                "schema": revision,
                "ok": first_bad is None,
                "runs": results,
                "blobs": {"count": n_blobs, "bad": bad_blobs},
            }
        )
    else:
        for r in results:
            print(
                f"{r['run']}: {r['events'] or 0} events, "
                + ("ok" if r["ok"] else f"BAD at seq {r['seq']}: {r['problem']}")
            )
        print(f"blobs: {n_blobs}, " + (f"{len(bad_blobs)} BAD" if bad_blobs else "ok"))
    if first_bad:
        raise CheckFailed(first_bad)


@app.command()
@cli_errors
def runs(db: DbOpt = DEFAULT_DB, json_: JsonOpt = False) -> None:
    """List the runs of a ledger, oldest first, with their kind (train, or bench). A training
    run's facts come from its stored status view, or from folding it when it has none."""
    from skillopt.commands.bench import bench_phase
    from skillopt.commands.runner import load_state
    from skillopt.ledger.store import Ledger
    from skillopt.machine.reports.status_format import STATUS_FORMAT
    from skillopt.machine.reports.views import status_view

    ledger = _track(Ledger.open(db))
    rows = []
    for row in ledger.runs():
        entry = {"run": row.name, "id": row.id, "kind": row.kind, "created_at": row.created_at}
        try:
            if row.kind == "bench":  # no trainer state: its own phrase
                events, phase = bench_phase(ledger, row.id)
                rows.append(entry | {"events": events, "phase": phase, "best_score": None})
                continue
            view = ledger.current_status(row.id, STATUS_FORMAT)
            if view is None:
                view = status_view(load_state(ledger, row.id))
        except CorruptEvent as exc:  # one bad run must not hide the others
            rows.append(
                entry | {"events": None, "phase": f"corrupt at seq {exc.seq}", "best_score": None}
            )
            continue
        rows.append(entry | {k: view[k] for k in ("events", "phase", "best_score")})
    if json_:
        emit_json(rows)
        return
    for r in rows:
        print(
            f"{r['run']:<20} {r['kind']:<5} {r['id']}  {r['created_at']}  {r['events'] or 0:>6} "
            f"events  {r['phase']}"
        )


RefArg = Annotated[
    str,
    typer.Argument(
        metavar="REF",
        help="initial | best | current | final | step:N | candidate:N | hash prefix",
    ),
]


def _skill(db: str, run: str | None, ref: str) -> tuple[Any, Any, str]:
    """(ledger, state, full hash) of the skill REF names in the run."""
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.history import RefError, resolve

    ledger, row = _open(db, run)
    state = load_state(ledger, row.id)
    try:
        return ledger, state, resolve(state, ref)
    except RefError as exc:
        raise InputError(f"run {row.name}: {exc}") from None


@app.command()
@cli_errors
def why(ref: RefArg, db: DbOpt = DEFAULT_DB, run: RunOpt = None, json_: JsonOpt = False) -> None:
    """The evidence chain of a skill version: verdict, parent, edits and where each came from
    (merge calls, reflection minibatches, their items and fail reasons), selection flips."""
    from skillopt.machine.reports.forensics import render_why
    from skillopt.machine.reports.forensics import why as why_tree

    _, state, skill = _skill(db, run, ref)
    tree = why_tree(state, skill)
    emit_json(tree) if json_ else sys.stdout.write(render_why(tree))


@skill_app.command("show")
@cli_errors
def skill_show(ref: RefArg, db: DbOpt = DEFAULT_DB, run: RunOpt = None) -> None:
    """Print the text of a skill version."""
    ledger, _, skill = _skill(db, run, ref)
    sys.stdout.write(ledger.get_blob(skill))


@skill_app.command("export")
@cli_errors
def skill_export(
    ref: RefArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
) -> None:
    """Write a skill version to a file (e.g. the best skill, to ship it)."""
    ledger, _, skill = _skill(db, run, ref)
    if not output.parent.is_dir():
        raise InputError(f"-o {output}: directory {output.parent} does not exist")
    output.write_text(ledger.get_blob(skill), "utf-8")
    sys.stderr.write(f"wrote {output} (skill {skill[:12]})\n")


@skill_app.command("diff")
@cli_errors
def skill_diff(a: RefArg, b: RefArg, db: DbOpt = DEFAULT_DB, run: RunOpt = None) -> None:
    """Unified diff between two skill versions (e.g. `skill diff initial best`)."""
    from skillopt.machine.reports.history import unified_diff

    ledger, _, first = _skill(db, run, a)
    _, _, second = _skill(db, run, b)
    texts = ledger.get_blobs([first, second])
    sys.stdout.write(
        unified_diff(texts[first], texts[second], f"{a} ({first[:12]})", f"{b} ({second[:12]})")
    )


@skill_app.command("log")
@cli_errors
def skill_log(db: DbOpt = DEFAULT_DB, run: RunOpt = None, json_: JsonOpt = False) -> None:
    """Every skill version of the run: hash, step, fate, selection score, length."""
    from skillopt.machine.reports.history import versions

    ledger, row = _open(db, run)
    from skillopt.commands.runner import load_state

    state = load_state(ledger, row.id)
    found = versions(state)
    lengths = {h: len(t) for h, t in ledger.get_blobs([v.hash for v in found]).items()}
    rows = [
        {
            "hash": v.hash,
            "step": v.step,
            "parent": v.parent,
            "fate": v.fate,
            "origin": v.origin,
            "score": v.score,
            "length": lengths.get(v.hash),
            "current": v.hash == state.current_hash,
            "best": v.hash == state.best_hash,
        }
        for v in found
    ]
    if json_:
        emit_json(rows)
        return
    _table(
        ["hash", "step", "fate", "score", "length", ""],
        [
            [
                r["hash"][:12],
                str(r["step"]),
                r["fate"],
                "–" if r["score"] is None else f"{r['score']:.4f}",
                str(r["length"]),
                " ".join(m for m in ("current", "best") if r[m]),
            ]
            for r in rows
        ],
    )


def _table(header: list[str], rows: list[list[str]]) -> None:
    """A rich table on a terminal, aligned plain text otherwise (pipes, files)."""
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(*header, box=None, pad_edge=False)
        for row in rows:
            table.add_row(*row)
        Console(highlight=False).print(table)
        return
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command()
@cli_errors
def blob(
    prefix: Annotated[str, typer.Argument(help="A blob hash or its prefix (6+ hex digits).")],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Print a stored text: a skill, a trajectory, an optimizer prompt or reply (see `why`)."""
    from skillopt.ledger.store import Ledger

    ledger = _track(Ledger.open(db))
    if len(prefix) < 6:
        raise InputError(f"blob {prefix!r}: give at least 6 hex digits")
    found = ledger.find_blobs(prefix)
    if len(found) != 1:
        raise InputError(f"blob {prefix!r}: {'no match' if not found else 'ambiguous prefix'}")
    sys.stdout.write(ledger.get_blob(found[0]))


@app.command()
@cli_errors
def export(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help="Folder to write (created; must be empty).")
    ],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    format_: Annotated[
        str, typer.Option("--format", help="Only `skillopt` (the reference layout).")
    ] = "skillopt",
) -> None:
    """Write the run in the reference trainer's output layout (config.json, history.json,
    skills/, best_skill.md, runtime_state.json, summary.json, steps/step_NNNN/...)."""
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.export import export_reference

    if format_ != "skillopt":
        raise InputError(f"--format {format_}: unknown format (known: skillopt)")
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder} is not empty; export writes into a new or empty folder")
    ledger, row = _open(db, run)
    state = load_state(ledger, row.id)
    if state.dataset is None:
        raise InputError(f"run {row.name} has not started; nothing to export")
    skills = [state.initial_hash, state.best_hash, *(r.current_hash for r in state.records)]
    skills += [p.candidate.candidate_hash for p in state.details.values() if p.candidate]
    files = export_reference(state, ledger.get_blobs(skills), str(folder.resolve()))
    for rel, text in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, "utf-8")
    sys.stderr.write(f"wrote {len(files)} files to {folder}\n")


@app.command()
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
    from skillopt.machine.config.compat import canonical_assignment, redact
    from skillopt.machine.config.schema import (
        ConfigError,
        apply_override,
        recorded_config,
        validate_config,
    )
    from skillopt.machine.core.canonical import canonical_json, sha256_text
    from skillopt.machine.core.events import ForkOrigin, RunCreated, SettingsChanged
    from skillopt.machine.decisions.fork import changes, fork_problems
    from skillopt.machine.loop.reducer import reduce
    from skillopt.machine.verify import verify_events

    ledger, row = _open(db, run)
    stored = ledger.read(row.id)
    if not 1 <= at <= len(stored):
        raise InputError(f"--at {at}: run {row.name} has events 1..{len(stored)}")
    prefix = stored[:at]
    state = fold(prefix)
    old = dict(state.config_data)
    try:
        # A run recorded before a mechanism existed keeps it off (see recorded_config).
        data: dict[str, Any] = recorded_config(old).model_dump(mode="json")
        for assignment in set_ or []:
            data = apply_override(data, canonical_assignment(assignment))
        data, hidden = redact(data)
        for where in hidden:
            sys.stderr.write(f"warning: {where}: a secret-looking value is never recorded\n")
        config = validate_config(data)
        new = config.model_dump(mode="json")
    except ConfigError as exc:
        raise InputError(f"--set: {exc}") from None
    diff = changes(old, new)
    problems = fork_problems(state, config, diff)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"fork refused: {problems[0]}{more}")
    origin = ForkOrigin(run_name=row.name, run_id=row.id, seq=at)
    first = RunCreated.model_validate(
        prefix[0].payload | {"run_name": name, "forked_from": origin.model_dump()}
    )
    events = [first, *(e.event() for e in prefix[1:])]
    stamps = [e.recorded_at for e in prefix[1:]]
    if diff:
        events.append(SettingsChanged(changes=diff, config=new))
        stamps.append(utc_now())
    hashes = {h for e in events for h in _blob_refs(e.payload())}
    outcome = verify_events(list(enumerate(events, start=1)), ledger.get_blobs(hashes))
    if outcome.problem is not None:
        raise InputError(f"fork refused: seq {outcome.problem[0]}: {outcome.problem[1]}")
    run_id = "r" + sha256_text(canonical_json([name, old, row.id, at]))[:12]
    ledger.create_run(run_id, name, new, utc_now(), first, status=status_of(reduce(events[:1])))
    ledger.append(run_id, 1, events[1:], stamps, status=status_of(reduce(events)))
    if json_:
        emit_json({"run": name, "id": run_id, "forked_from": origin.model_dump(), "changes": diff})
    else:
        changed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items()) or "no settings"
        print(
            f"forked run {name!r} (id {run_id}) from {row.name} at seq {at}; changed {changed}; "
            f"next: skillopt run --db {db} --run {name}"
        )


calls_app = typer.Typer(
    help="The LLM call journal: every model call, its tokens and cost.", invoke_without_command=True
)
app.add_typer(calls_app, name="calls")


@calls_app.callback()
@cli_errors
def calls_list(
    ctx: typer.Context,
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Only this stage (e.g. reflect, rollout:train).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """List the run's model calls with tokens and cost; `calls show ID` prints one."""
    if ctx.invoked_subcommand is not None:
        return
    from skillopt.commands.runner import load_state
    from skillopt.ledger.store import Journal
    from skillopt.machine.decisions.spending import token_cost

    ledger, row = _open(db, run)
    state = load_state(ledger, row.id)
    rows = []
    for c in Journal(ledger).calls(row.id, stage):
        role = getattr(state.cfg.models, c.role)
        ok = c.status == "ok"
        cost = token_cost(role.prices, c.tokens_in, c.tokens_out, c.cache_read) if ok else None
        rows.append(
            {
                "id": c.id,
                "step": c.step,
                "stage": c.stage,
                "unit": c.unit,
                "role": c.role,
                "model": c.model,
                "status": c.status,
                "tokens_in": c.tokens_in,
                "tokens_out": c.tokens_out,
                "cache_read": c.cache_read,
                "cache_write": c.cache_write,
                "retries": c.retries,
                "latency_ms": c.latency_ms,
                "cost": cost,
                "error": c.error_message,
            }
        )
    if json_:
        emit_json(rows)
        return
    _table(
        ["id", "step", "stage", "unit", "status", "in", "out", "cost"],
        [
            [
                r["id"],
                str(r["step"]),
                r["stage"],
                r["unit"][:28],
                r["status"],
                str(r["tokens_in"]),
                str(r["tokens_out"]),
                "–" if r["cost"] is None else f"{r['cost']:.6f}",
            ]
            for r in rows
        ],
    )


@calls_app.command("show")
@cli_errors
def calls_show(
    call_id: Annotated[str, typer.Argument(metavar="ID", help="A call id (or prefix).")],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Print one call: its key, the request (role, model, system, messages) and the reply."""
    from skillopt.ledger.store import Journal, Ledger

    ledger = _track(Ledger.open(db))
    found = Journal(ledger).find(call_id)
    exact = [c for c in found if c.id == call_id]
    if len(exact) != 1 and len(found) != 1:
        raise InputError(f"call {call_id!r}: {'no match' if not found else 'ambiguous prefix'}")
    c = exact[0] if exact else found[0]
    request = json.loads(ledger.get_blob(c.request_blob))
    print(
        f"call {c.id}: {c.role} {c.model}, step {c.step}, stage {c.stage}, unit {c.unit}, "
        f"#{c.call_index}, {c.status}, {c.tokens_in} in / {c.tokens_out} out, {c.retries} retries"
    )
    print("\n--- system ---\n" + request["system"])
    for role, content in request["messages"]:
        print(f"\n--- {role} ---\n{content}")
    if c.response_blob:
        print("\n--- reply ---\n" + ledger.get_blob(c.response_blob))
    else:
        print(f"\n--- failed: {c.error_class}: {c.error_message}")


@app.command()
@cli_errors
def doctor(
    config_path: Annotated[
        Path | None, typer.Argument(metavar="[CONFIG]", help="A config file; else --db/--run.")
    ] = None,
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Send one tiny request per configured role and say whether credentials, endpoint and
    model work, with the provider's error when not. Exit 1 if a role fails."""
    import time

    from skillopt.adapters.protocol import AdapterError, ChatRequest, Message
    from skillopt.adapters.registry import make_model
    from skillopt.commands.context import role_settings
    from skillopt.commands.runner import load_state

    if config_path is not None:
        from skillopt.commands.config_files import load_config

        loaded = load_config(config_path, [])
        config = loaded.config
        for line in loaded.warnings:
            sys.stderr.write(f"warning: {line}\n")
    else:
        ledger, row = _open(db, run)
        config = load_state(ledger, row.id).cfg
    results = []
    for role in ("target", "optimizer"):
        settings = role_settings(config, role)
        entry: dict[str, Any] = {
            "role": role,
            "backend": settings.backend,
            "model": settings.model,
            "base_url": settings.base_url,
            "ok": False,
        }
        start = time.monotonic()
        try:
            model = make_model(settings)
            reply = model.complete(
                ChatRequest(
                    role,
                    "You are a health check.",  # type: ignore[arg-type]
                    (Message("user", "Reply with the word OK."),),
                    "doctor",
                    max_tokens=16,
                )
            )
            entry |= {"ok": True, "reply": reply.text[:40], "served_by": reply.model}
        except (AdapterError, Exception) as exc:  # every failure is the answer here
            entry["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        entry["latency_ms"] = int((time.monotonic() - start) * 1000)
        results.append(entry)
    if json_:
        emit_json(results)
    else:
        for r in results:
            where = f"{r['backend']} {r['model']}" + (
                f" at {r['base_url']}" if r["base_url"] else ""
            )
            verdict = (
                f"ok ({r['latency_ms']} ms, served by {r['served_by']})"
                if r["ok"]
                else f"FAILED: {r['error']}"
            )
            print(f"{r['role']:<9} {where}: {verdict}")
    if not all(r["ok"] for r in results):
        raise CheckFailed("a model role does not work; see above")


def _check_status_view(
    ledger: Any, run_id: str, stored: list[Any]
) -> tuple[str, tuple[int, str] | None]:
    """(ok | stale | none, problem): the run's stored status view must be what its events up
    to the view's seq fold to, byte for byte. One of another format is stale: never shown."""
    from skillopt.commands.runner import fold, status_of
    from skillopt.ledger.store import check_chain
    from skillopt.machine.reports.status_format import STATUS_FORMAT

    row = ledger.status_view(run_id)
    if row is None:
        return "none", None
    if row.format != STATUS_FORMAT:
        return "stale", None
    if row.seq > len(stored):  # appended since `stored` was read: events only ever grow
        stored = ledger.read(run_id, until=row.seq)
        if (problem := check_chain(stored)) is not None:
            return "bad", problem
    if not 1 <= row.seq <= len(stored) or stored[row.seq - 1].hash != row.hash:
        return "bad", (row.seq, "the status view is keyed by an event this run does not have")
    try:
        expected = status_of(fold(stored[: row.seq])).json
    except CorruptEvent as exc:
        return "bad", (exc.seq, exc.problem)
    if row.view != expected:
        return "bad", (
            row.seq,
            "the stored status view differs from what the events fold to (tampered?); "
            "`skillopt db refresh-status` writes it anew",
        )
    return "ok", None


@db_app.command("refresh-status")
@cli_errors
def db_refresh_status(db: DbOpt = DEFAULT_DB, run: RunOpt = None, json_: JsonOpt = False) -> None:
    """Fold training runs (all, or --run) and store each one's status view as of its last
    event, so that `skillopt status` answers without folding. `run` keeps it current by
    itself; this is for ledgers written before skillopt stored views."""
    from skillopt.commands.runner import load_state, status_of
    from skillopt.ledger.store import ConflictError, Ledger

    if run is not None:
        ledger, row = _open(db, run)
        rows = [row]
    else:
        ledger = _track(Ledger.open(db))
        rows = [r for r in ledger.runs() if r.kind == "train"]
    done = []
    for row in rows:
        state = load_state(ledger, row.id)
        try:
            ledger.put_status(row.id, state.seq, status_of(state))
            done.append({"run": row.name, "seq": state.seq, "skipped": None})
        except ConflictError:  # a writer appended meanwhile, and stored the view it describes
            why = "another process is appending to it (and storing its view)"
            done.append({"run": row.name, "seq": None, "skipped": why})
    if json_:
        emit_json(done)
    else:
        for r in done:
            said = f"skipped: {r['skipped']}" if r["skipped"] else f"as of seq {r['seq']}"
            print(f"{r['run']}: status view {said}")


@db_app.command("upgrade")
@cli_errors
def db_upgrade(db: DbOpt = DEFAULT_DB) -> None:
    """Upgrade the ledger schema to this skillopt's version (opening a ledger also does it)."""
    from skillopt.ledger.store import Ledger

    ledger = _track(Ledger.open(db))
    print(f"{db}: schema revision {ledger.schema_revision()}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
