"""`skillopt bench closed-loop`: the command over the bench engine (commands/bench_runner.py),
which runs the tasks and records them; this module checks the options and prints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from skillopt.commands.cli.common import DEFAULT_DB, cli_errors, emit_json, json_text
from skillopt.commands.errors import InputError


@cli_errors
def closed_loop(
    tasks: Annotated[
        Path | None,
        typer.Option(
            "--tasks",
            help="A JSON/JSONL file of tasks {id, description, expected_output, task_type?, "
            'language?}, or the seed\'s {"tasks": [...]} (or a split directory); task_type '
            "defaults to the language. Default: the first config's task set (the shipped one).",
        ),
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config",
            help="A closed_loop config; its models.target runs (repeatable: one column per "
            "config). Default: the one shipped with skillopt, as examples/closed_loop.yaml "
            "(the offline model).",
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Run every config with this model instead of its own target: haiku, sonnet, "
            "opus, or both (= haiku and sonnet); repeatable. Anthropic's API, the key in "
            "$ANTHROPIC_API_KEY, the built-in list prices (--set models.target.KEY=... still "
            "applies after it). One column per config and model.",
        ),
    ] = None,
    retry_cap: Annotated[
        int | None, typer.Option("--retry-cap", help="Attempts per task (env.options.retry_cap).")
    ] = None,
    task: Annotated[
        list[str] | None, typer.Option("--task", help="Only this task id (repeatable).")
    ] = None,
    split: Annotated[
        list[str] | None,
        typer.Option(
            "--split", help="Only this split of the task set: train, selection, test (repeatable)."
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            help="Work on the first N tasks of the plan only; the bench stays open and the same "
            "command without --limit finishes it.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List tasks and expected outputs; call no model.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write NAME.json and NAME.md into this directory."),
    ] = None,
    skill: Annotated[
        Path | None,
        typer.Option(
            "--skill",
            help="The skill every config's target reads (e.g. from `skillopt skill export best "
            "-o best.md`); default: each config's env.skill_init.",
        ),
    ] = None,
    db: Annotated[
        str,
        typer.Option("--db", envvar="SKILLOPT_DB", help="Ledger: a SQLite path or SQLAlchemy URL."),
    ] = DEFAULT_DB,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Run name; an existing bench of that name resumes (recorded tasks are not run "
            "again). Default: derived from the plan, so the same command resumes.",
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key of every config: --set key.path=value."),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Task runs at a time. Default 1: each task's wall time is measured alone; more "
            "share the cores (the events are the same either way).",
        ),
    ] = 1,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local (threads here) or ray (Ray tasks, as train.executor: the first "
            "config's ray settings; pip install 'skillopt[ray]').",
        ),
    ] = "local",
) -> None:
    """Run closed-loop code tasks with the target model of each config (or each --model) and
    report the seed's per-task economics (tokens, repair tokens by turn, attempts, wall time,
    outcome, USD at the recorded prices), a language x model matrix and `K/N runs succeeded`.
    Every attempt is recorded in the ledger (a run of kind bench); a bench that cannot start
    (a bad config, a missing module or API key) records nothing.

    The seed bench's own files, with the configs of examples/seed_bench/ copied beside them:
    --tasks bench/closed-loop/tasks.json --config ilo.yaml --model both"""
    from skillopt.commands.bench_runner import default_config, load_arms, plan_items, run_bench
    from skillopt.machine.config.prices import resolve_shorthands

    splits = _check_options(tasks, split, limit, retry_cap, output)
    _check_executor(executor, workers)
    try:
        models = resolve_shorthands(list(model or []))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    paths = list(config or [])
    if not paths:
        default = default_config()
        if not default.is_file():
            raise InputError(f"no --config given and {default} is not there; pass --config")
        paths = [default]
    overrides = list(set_ or [])
    if retry_cap is not None:
        overrides.append(f"env.options.retry_cap={retry_cap}")
    arms, _ = load_arms(paths, overrides, skill, tasks, models)
    plan, source = plan_items(arms[0], tasks, splits, list(dict.fromkeys(task or [])))
    if dry_run:
        _print_tasks(plan[:limit], json_)
        return
    try:
        data = run_bench(arms, plan, source, limit, db, name, executor, workers)
    except KeyboardInterrupt:  # said here: cli_errors's message names `skillopt run`
        sys.stderr.write(
            "interrupted: every task recorded so far is kept; the same command (with --name) "
            "continues\n"
        )
        raise typer.Exit(130) from None
    _print_report(data, json_, output)


def _check_executor(executor: str, workers: int) -> None:
    from skillopt.commands.executors import RAY_EXTRA, ray_missing

    if executor not in ("local", "ray"):
        raise InputError(f"--executor {executor}: must be local or ray")
    if not 1 <= workers <= 1024:
        raise InputError(f"--workers {workers}: must be between 1 and 1024")
    if executor == "ray" and ray_missing():
        raise InputError(f"--executor ray, but Ray is not installed: {RAY_EXTRA}")


def _check_options(
    tasks: Path | None,
    split: list[str] | None,
    limit: int | None,
    retry_cap: int | None,
    output: Path | None,
) -> list[str]:
    """Refuse options that cannot work before any config is read; the splits to plan from."""
    from skillopt.commands.bench_runner import SPLITS

    if limit is not None and limit < 1:
        raise InputError(f"--limit {limit}: must be >= 1")
    if retry_cap is not None and retry_cap < 1:
        raise InputError(f"--retry-cap {retry_cap}: must be >= 1")
    splits = list(dict.fromkeys(split or SPLITS))
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise InputError(f"--split {bad[0]}: unknown split (known: {', '.join(SPLITS)})")
    if split and tasks is not None and tasks.is_file():
        raise InputError("--split applies to a task set with splits, not to a --tasks file")
    if output is not None and not output.parent.is_dir():
        raise InputError(f"-o {output}: directory {output.parent} does not exist")
    if output is not None and output.exists() and not output.is_dir():
        raise InputError(f"-o {output}: not a directory")
    return splits


def _print_tasks(plan: list[Any], json_: bool) -> None:
    """--dry-run: the planned tasks and their expected outputs."""
    from skillopt.machine.reports.bench import render_task_list

    rows = [
        {
            "id": i.id,
            "task_type": i.task_type,
            "description": i.data["description"],
            "expected_output": i.data["expected_output"],
        }
        for i in plan
    ]
    if json_:
        emit_json(rows)
    else:
        sys.stdout.write(render_task_list(rows))


def _print_report(data: dict[str, Any], json_: bool, output: Path | None) -> None:
    """The report as JSON or markdown on stdout; with -o, both into files and the summary."""
    from skillopt.machine.reports.bench import render_markdown

    text = json_text(data)
    markdown = render_markdown(data)
    if output is not None:
        output.mkdir(exist_ok=True)
        (output / f"{data['run']}.json").write_text(text, "utf-8")
        (output / f"{data['run']}.md").write_text(markdown, "utf-8")
        sys.stderr.write(f"wrote {output / data['run']}.json and .md\n")
        if not json_:
            print(data["summary"])
    if json_:
        sys.stdout.write(text)
    elif output is None:
        sys.stdout.write(markdown)
