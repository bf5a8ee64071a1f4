"""Commands that read a ledger and change nothing: events, replay, report, runs, why, skill
show/export/diff/log, blob, calls, export."""

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
    table,
)
from skillopt.commands.errors import CheckFailed, InputError
from skillopt.ledger.errors import CorruptEvent

RefArg = Annotated[
    str,
    typer.Argument(
        metavar="REF",
        help="initial | best | current | final | step:N | candidate:N | hash prefix",
    ),
]


@cli_errors
def events(
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    type_: Annotated[str | None, typer.Option("--type", help="Only this event type.")] = None,
    json_: JsonOpt = False,
) -> None:
    """List the run's events (seq, type, key facts)."""
    ledger, row = open_run(db, run, bench_ok=True)
    rows = [e for e in ledger.read(row.id) if type_ is None or e.type == type_]
    if json_:
        emit_json([e.as_json() for e in rows])
        return
    for e in rows:
        print(event_line(e))


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
    from skillopt.machine.reports.views import status_view

    ledger, row = open_run(db, run)
    stored = ledger.read(row.id, until)
    problem: tuple[int, str] | None = None
    if verify:
        view, problem = _verified_view(ledger, row.name, stored)
    else:
        view = status_view(fold(stored))
    if json_:
        emit_json(
            view | ({"problem": {"seq": problem[0], "message": problem[1]}} if problem else {})
        )
    else:
        print_status(view)
        if verify:
            print("  checks: " + ", ".join(f"{k} {v}" for k, v in sorted(view["checks"].items())))
    if problem is not None:
        raise CheckFailed(f"run {row.name}: seq {problem[0]}: {problem[1]}")


def _verified_view(
    ledger: Any, run_name: str, stored: list[Any]
) -> tuple[dict[str, Any], tuple[int, str] | None]:
    """(the status view with `verified` and `checks`, the first problem): the hash chain is
    checked, then every decision recomputed from its recorded inputs. With a problem, the view
    is of the events before it."""
    from skillopt.commands.runner import fold
    from skillopt.ledger.events import check_chain
    from skillopt.machine.reports.views import status_view
    from skillopt.machine.verify import verify_events

    checks: dict[str, int] = {"hash_chain": len(stored)}
    problem = check_chain(stored)
    if problem is None:
        hashes = {h for e in stored for h in blob_refs(e.payload)}
        try:
            decoded = [(e.seq, e.event()) for e in stored]
        except CorruptEvent as exc:
            raise CheckFailed(str(exc)) from None
        outcome = verify_events(decoded, ledger.get_blobs(hashes), run_name)
        checks |= outcome.checks
        problem = outcome.problem
    if problem is not None:
        good = [e for e in stored if e.seq < problem[0]]
        return status_view(fold(good)) | {"verified": False, "checks": checks}, problem
    return status_view(fold(stored)) | {"verified": True, "checks": checks}, None


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
    from skillopt.commands.api import render_report
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.charts import score_chart_svg
    from skillopt.machine.reports.views import report_data

    if md + json_ + html > 1:
        raise InputError("choose one of --md, --json and --html")
    if output is not None and not output.parent.is_dir():
        raise InputError(f"-o {output}: directory {output.parent} does not exist")
    ledger, row = open_run(db, run)
    state = load_state(ledger, row.id)
    fmt = "json" if json_ else "html" if html else "md"
    chart = output.with_name(f"{output.stem}.scores.svg") if output and fmt == "md" else None
    text = render_report(ledger, state, fmt, chart.name if chart else None)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, "utf-8")
    if chart is not None:
        chart.write_text(score_chart_svg(report_data(state)), "utf-8")
    sys.stderr.write(f"wrote {output}" + (f" and {chart}" if chart else "") + "\n")


@cli_errors
def runs(db: DbOpt = DEFAULT_DB, json_: JsonOpt = False) -> None:
    """List the runs of a ledger, oldest first, with their kind (train, or bench). A training
    run's facts come from its stored status view, or from folding it when it has none."""
    from skillopt.commands.api import run_overview

    rows = [
        {k: v for k, v in r.items() if k != "view"}
        | ({k: r["view"][k] for k in ("events", "phase", "best_score")} if r["view"] else {})
        for r in run_overview(open_ledger(db))
    ]
    if json_:
        emit_json(rows)
        return
    for r in rows:
        print(
            f"{r['run']:<20} {r['kind']:<5} {r['id']}  {r['created_at']}  {r['events'] or 0:>6} "
            f"events  {r['phase']}"
        )


def _skill(db: str, run: str | None, ref: str) -> tuple[Any, Any, str]:
    """(ledger, state, full hash) of the skill REF names in the run."""
    from skillopt.commands.api import skill_hash
    from skillopt.commands.runner import load_state

    ledger, row = open_run(db, run)
    state = load_state(ledger, row.id)
    return ledger, state, skill_hash(state, ref, row.name)


@cli_errors
def why(ref: RefArg, db: DbOpt = DEFAULT_DB, run: RunOpt = None, json_: JsonOpt = False) -> None:
    """The evidence chain of a skill version: verdict, parent, edits and where each came from
    (merge calls, reflection minibatches, their items and fail reasons), selection flips."""
    from skillopt.machine.reports.forensics import render_why
    from skillopt.machine.reports.forensics import why as why_tree

    _, state, skill = _skill(db, run, ref)
    tree = why_tree(state, skill)
    emit_json(tree) if json_ else sys.stdout.write(render_why(tree))


@cli_errors
def skill_show(ref: RefArg, db: DbOpt = DEFAULT_DB, run: RunOpt = None) -> None:
    """Print the text of a skill version."""
    ledger, _, skill = _skill(db, run, ref)
    sys.stdout.write(ledger.get_blob(skill))


@cli_errors
def skill_export(
    ref: RefArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write.")],
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
) -> None:
    """Write a skill version to a file (e.g. the best skill, to ship it), without the
    machine-owned regions that are empty (a slow-update or appendix block with nothing in it)."""
    from skillopt.machine.decisions.skilldoc import for_export

    ledger, _, skill = _skill(db, run, ref)
    if not output.parent.is_dir():
        raise InputError(f"-o {output}: directory {output.parent} does not exist")
    output.write_text(for_export(ledger.get_blob(skill)), "utf-8")  # no empty regions
    sys.stderr.write(f"wrote {output} (skill {skill[:12]})\n")


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


@cli_errors
def skill_log(db: DbOpt = DEFAULT_DB, run: RunOpt = None, json_: JsonOpt = False) -> None:
    """Every skill version of the run: hash, step, fate, selection score, length."""
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.history import versions

    ledger, row = open_run(db, run)
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
    table(
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


@cli_errors
def blob(
    prefix: Annotated[str, typer.Argument(help="A blob hash or its prefix (6+ hex digits).")],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Print a stored text: a skill, a trajectory, an optimizer prompt or reply (see `why`)."""
    ledger = open_ledger(db)
    if len(prefix) < 6:
        raise InputError(f"blob {prefix!r}: give at least 6 hex digits")
    found = ledger.find_blobs(prefix)
    if len(found) != 1:
        raise InputError(f"blob {prefix!r}: {'no match' if not found else 'ambiguous prefix'}")
    sys.stdout.write(ledger.get_blob(found[0]))


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
    """List the run's model calls with tokens and cost (a training run's or a bench's: the
    most recent run without --run); `calls show ID` prints one."""
    if ctx.invoked_subcommand is not None:  # `calls show`: this callback runs first
        return
    from skillopt.commands.api import call_rows

    ledger, row = open_run(db, run, bench_ok=True)
    rows = call_rows(ledger, row.id, stage, row.kind)
    if json_:
        emit_json(rows)
        return
    table(
        ["id", "step", "role", "stage", "unit", "status", "in", "out", "cost"],
        [
            [
                r["id"],
                str(r["step"]),
                r["role"],
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


@cli_errors
def calls_show(
    call_id: Annotated[str, typer.Argument(metavar="ID", help="A call id (or prefix).")],
    db: DbOpt = DEFAULT_DB,
) -> None:
    """Print one call: its key, the request (role, model, system, messages) and the reply."""
    from skillopt.ledger.journal import Journal

    ledger = open_ledger(db)
    found = Journal(ledger).find(call_id)
    exact = [c for c in found if c.id == call_id]
    if len(exact) != 1 and len(found) != 1:
        raise InputError(f"call {call_id!r}: {'no match' if not found else 'ambiguous prefix'}")
    c = exact[0] if exact else found[0]
    request = json.loads(ledger.get_blob(c.request_blob))
    print(
        f"call {c.id}: {c.role} {c.model}, step {c.step}, stage {c.stage}, unit {c.unit}, "
        f"#{c.call_index}, {c.status}, {c.tokens_in} in / {c.tokens_out} out, {c.retries} retries"
        + (f", ended: {c.finish_reason}" if c.finish_reason else "")
    )
    print("\n--- system ---\n" + request["system"])
    for role, content in request["messages"]:
        print(f"\n--- {role} ---\n{content}")
    if c.response_blob:
        print("\n--- reply ---\n" + ledger.get_blob(c.response_blob))
    else:
        print(f"\n--- failed: {c.error_class}: {c.error_message}")


@cli_errors
def export(
    target: Annotated[
        str | None,
        typer.Argument(
            metavar="DIR|RUN",
            help="--format skillopt: the folder to write (created; must be empty). "
            "--format mlflow: the run (like --run; default: the most recent run).",
        ),
    ] = None,
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            help="skillopt: the reference trainer's file layout into DIR. mlflow: log the run "
            "to an MLflow tracking server or store (needs pip install 'skillopt\\[mlflow]').",
        ),
    ] = "skillopt",
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            envvar="MLFLOW_TRACKING_URI",
            help="mlflow: where to log (sqlite:///mlflow.db, http://host:5000; env "
            "MLFLOW_TRACKING_URI; default: the run's tracking.mlflow_uri).",
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment",
            help="mlflow: the experiment (created if missing; default: the run's "
            "tracking.mlflow_experiment, else skillopt).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Export a run. --format skillopt writes the reference trainer's output layout (config.json,
    history.json, skills/, best_skill.md, runtime_state.json, summary.json,
    steps/step_NNNN/...) into DIR. --format mlflow logs the run to MLflow: the resolved config
    as params, per-step metrics (selection/candidate, selection/current, selection/best,
    gate/accepted, edits/applied, spend/tokens, spend/usd, ... with the step as MLflow's step;
    step 0 is the initial skill), the test scores at the end, and best_skill.md and report.md
    as artifacts. Repeating it logs only what is new: the MLflow run is found by its tag
    skillopt.run_id, and nothing is logged twice.

    Example: skillopt export --format mlflow --tracking-uri sqlite:///mlflow.db demo"""
    if format_ == "mlflow":
        _export_mlflow(target, db, run, tracking_uri, experiment, json_)
        return
    if format_ != "skillopt":
        raise InputError(f"--format {format_}: unknown format (known: skillopt, mlflow)")
    if experiment is not None:
        raise InputError("--experiment is for --format mlflow")
    if target is None:
        raise InputError(
            "export needs DIR, the folder to write (to log to MLflow instead: --format mlflow)"
        )
    _export_reference(Path(target), db, run)


def _export_reference(folder: Path, db: str, run: str | None) -> None:
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.export import export_reference

    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder} is not empty; export writes into a new or empty folder")
    ledger, row = open_run(db, run)
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


def _export_mlflow(
    target: str | None,
    db: str,
    run: str | None,
    uri: str | None,
    experiment: str | None,
    json_: bool,
) -> None:
    from skillopt.commands.tracking import DEFAULT_EXPERIMENT, Mirror, require_mlflow
    from skillopt.ledger.urls import masked_url
    from skillopt.machine.config.schema import recorded_config

    if target is not None and run is not None and target != run:
        raise InputError(f"run {target!r} and --run {run!r}: name the run once")
    require_mlflow()
    ledger, row = open_run(db, target or run)
    tracking = recorded_config(json.loads(row.config)).tracking
    uri = uri or tracking.mlflow_uri
    if not uri:
        raise InputError(
            "--format mlflow needs --tracking-uri URI (or MLFLOW_TRACKING_URI, or the run's "
            "tracking.mlflow_uri), e.g. sqlite:///mlflow.db"
        )
    name = experiment or tracking.mlflow_experiment or DEFAULT_EXPERIMENT
    try:
        facts = Mirror(ledger, row, uri, name).sync()
    except InputError:
        raise
    except Exception as exc:
        if not type(exc).__module__.startswith(("mlflow", "requests", "urllib3")):
            raise
        detail = " ".join(str(exc).split())[:300]
        raise InputError(f"--tracking-uri {masked_url(uri)}: MLflow refused: {detail}") from None
    facts["tracking_uri"] = masked_url(uri)
    if json_:
        emit_json(facts)
        return
    what = (
        "already up to date"
        if facts["up_to_date"]
        else f"{facts['params_logged']} params and {facts['metrics_logged']} metric values logged"
    )
    print(
        f"run {row.name} -> MLflow run {facts['mlflow_run_id']} (experiment {name!r}, "
        f"{facts['tracking_uri']}): {'created; ' if facts['created'] else ''}{what}"
    )
