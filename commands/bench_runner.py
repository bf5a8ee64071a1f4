"""The closed-loop benchmark of the seed, on the ledger (its command: `skillopt bench
closed-loop`, commands/cli/bench.py).

Every task runs with the target model of each config (no optimization): generate, run in the
sandbox, classify, repair up to the retry cap (adapters/environments/closed_loop.py). The bench is a run of
kind `bench` in the ledger: `bench.started` records the plan (configs, skill hashes, task ids),
one `bench.task` per task and config records every attempt (tokens, outcome, category, program
and output excerpts by blob hash, the call id), `bench.completed` the totals. Measured wall
times go to the `timings` table, next to the events and outside their hash chain, so the events
of two identical benches are identical. Model calls go through the call journal: a bench run
again under its name resumes where it stopped and pays for no recorded call twice.

`--model haiku|sonnet|both` runs every config with each model of the shorthand table
(machine/config/prices.py): one arm per config and model. Everything that can refuse a bench
(configs, tasks, documentation modules, the models and their API keys) is checked before the
ledger is opened, so a bench that cannot start leaves nothing behind.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from skillopt.adapters.protocol import AdapterError, ChatModel, DataSource, Item
from skillopt.commands.errors import InputError, RunFailed
from skillopt.commands.files import read_text

if TYPE_CHECKING:  # imported when a bench runs: `skillopt --help` stays quick
    from skillopt.adapters.environments.closed_loop import ClosedLoopEnvironment, Episode
    from skillopt.commands.executors import Executor
    from skillopt.ledger.events import StoredEvent
    from skillopt.ledger.ledger import Ledger
    from skillopt.machine.config.schema import SkilloptConfig
    from skillopt.machine.core.events import BenchArm, BenchCompleted, BenchStarted, BenchTask

SPLITS = ("train", "selection", "test")
EXCERPT = 2000  # stdout / stderr kept per attempt (the sandbox caps what it captures)
# The packaged default config's label: the one its copy, examples/closed_loop.yaml, gets from
# its file name, so that reports of the default bench read as before.
DEFAULT_LABEL = "closed_loop"


def default_config() -> Path:
    """The config benched without --config: shipped inside the package, next to the initial
    skill it names, so an installed skillopt needs no repository (the tasks ship there too)."""
    from importlib import resources

    return Path(str(resources.files("skillopt.skills").joinpath("closed_loop", "bench.yaml")))


@dataclass
class Arm:
    """One config of the bench (with one model, under --model): its environment, target model
    settings and skill."""

    label: str
    path: Path
    config: SkilloptConfig
    data: dict[str, Any]
    config_sha256: str
    env: ClosedLoopEnvironment
    skill: str
    model: ChatModel | None = None  # made before the ledger is opened (make_models)


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT else text[:EXCERPT] + f"... [{len(text) - EXCERPT} more]"


def _task_source(tasks: Path | None) -> DataSource | None:
    """--tasks: a split directory, or one file of tasks (all of them in the train split)."""
    if tasks is None:
        return None
    tasks = tasks.resolve()
    if tasks.is_dir():
        return DataSource(split_dir=str(tasks))
    if tasks.is_file():
        return DataSource(data_path=str(tasks), split_ratio=(1.0, 0.0, 0.0), split_seed=0)
    raise InputError(f"--tasks {tasks}: not found")


def load_arms(
    paths: list[Path],
    overrides: list[str],
    skill_file: Path | None,
    tasks: Path | None,
    models: list[str] | None = None,
) -> tuple[list[Arm], DataSource | None]:
    """Configs (each once per model shorthand of `models`, else with its own target), their
    environments (all on the task source of the first config, or --tasks), their skills;
    every problem is an InputError naming the file."""
    from skillopt.commands.config_files import data_source

    source = _task_source(tasks)
    skill_text = read_text(skill_file, "--skill file") if skill_file is not None else None
    arms: list[Arm] = []
    labels: set[str] = set()
    for path in paths:
        env: ClosedLoopEnvironment | None = None  # one per config: its options are the same
        for shorthand in models or [None]:
            config, data = _closed_loop_config(path, overrides, shorthand)
            if not arms and source is None:
                source = data_source(config.env)
            if skill_text is None:
                skill_path = (path.parent / config.env.skill_init).resolve()
                skill = read_text(skill_path, f"{path}: env.skill_init:")
            else:
                skill = skill_text
            env = env or _environment(path, config, source)
            arm = _arm(path, config, data, skill, env, labels, shorthand)
            arms.append(arm)
    return arms, source


def _with_shorthand(shorthand: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A config tree edit: models.target becomes the shorthand's backend and model. Settings of
    the config's own model that would not fit another one (its backend, endpoint, key
    variable, prices, options) go; its temperature, max tokens, timeouts and retries stay.
    The table's prices then apply (with_table_prices) and --set applies after it."""
    from skillopt.machine.config.prices import MODEL_SHORTHANDS

    backend, model, key_env = MODEL_SHORTHANDS[shorthand]
    dropped = ("backend", "model", "base_url", "api_key_env", "api_version", "prices", "cache")
    dropped += ("options", "reasoning_effort")

    def edit(tree: dict[str, Any]) -> dict[str, Any]:
        models = dict(tree.get("models") or {})
        target = models.get("target")
        kept = {k: v for k, v in (target or {}).items() if k not in dropped}
        models["target"] = {**kept, "backend": backend, "model": model, "api_key_env": key_env}
        return {**tree, "models": models}

    return edit


def _closed_loop_config(
    path: Path, overrides: list[str], shorthand: str | None = None
) -> tuple[SkilloptConfig, dict[str, Any]]:
    """The config at `path` (its target replaced by a model shorthand's), its data paths made
    absolute (relative to the file, as `init` records them), checked to be a closed_loop one."""
    from skillopt.commands.config_files import load_config
    from skillopt.machine.config.schema import ConfigError, validate_config

    edit = _with_shorthand(shorthand) if shorthand is not None else None
    loaded = load_config(path, overrides, edit)
    for line in loaded.warnings:
        if ".cache: " in line:  # the table's cache rules: a bench trains nothing to warn of
            continue
        if shorthand is None or "prices" not in line:  # a shorthand's prices are the table's
            sys.stderr.write(f"warning: {path}: {line}\n")
    config, data = loaded.config, dict(loaded.data)
    if config.env.name != "closed_loop":
        raise InputError(
            f"{path}: env.name is {config.env.name!r}; bench closed-loop needs a "
            "closed_loop config (its models.target is what runs)"
        )
    env_data = dict(data["env"])
    for key in ("split_dir", "data_path"):  # relative to the config file, recorded absolute
        if env_data.get(key) is not None:
            env_data[key] = str((path.parent / env_data[key]).resolve())
    options = dict(env_data.get("options") or {})
    if isinstance(options.get("skill_dir"), str) and options["skill_dir"]:  # the same
        options["skill_dir"] = str((path.parent / options["skill_dir"]).resolve())
        env_data["options"] = options
    data["env"] = env_data
    try:
        return validate_config(data), data
    except ConfigError as exc:
        raise InputError(f"{path}: {exc}") from None


def _environment(
    path: Path, config: SkilloptConfig, source: DataSource | None
) -> ClosedLoopEnvironment:
    """A config's environment: its tasks read and checked, its documentation modules fetched."""
    from skillopt.adapters.environments.closed_loop import ClosedLoopEnvironment

    try:
        env = ClosedLoopEnvironment(config.env.options, source)
    except AdapterError as exc:  # an option names its config; a bad row names its file
        raise InputError(f"{path}: {exc}" if str(exc).startswith("env.") else str(exc)) from None
    for line in env.warnings:
        sys.stderr.write(f"warning: {path}: {line}\n")
    return env


def _arm(
    path: Path,
    config: SkilloptConfig,
    data: dict[str, Any],
    skill: str,
    env: ClosedLoopEnvironment,
    labels: set[str],
    shorthand: str | None = None,
) -> Arm:
    """One arm; its label is the config file's stem (and the model shorthand), numbered when
    another arm has it."""
    from skillopt.machine.core.canonical import sha256_text

    stem = DEFAULT_LABEL if path == default_config() else path.stem
    if shorthand is not None:
        stem = f"{stem}-{shorthand}"
    label, n = stem, 2
    while label in labels:
        label, n = f"{stem}-{n}", n + 1
    labels.add(label)
    digest = sha256_text(path.read_text("utf-8"))
    return Arm(label, path, config, data, digest, env, skill)


def plan_items(
    arm: Arm, tasks: Path | None, splits: list[str], wanted: list[str]
) -> tuple[list[Item], dict[str, Any]]:
    """The tasks of the plan in order, and where they came from."""
    from skillopt.adapters.environments.splits import read_rows

    env = arm.env
    if tasks is not None and tasks.is_file():
        items = {i.id: i for i in env.items("train")}  # one file: every row, shuffled
        order = [str(r["id"]) for r in read_rows(tasks.resolve())]
        plan = [items[i] for i in order if i in items]
        source: dict[str, Any] = {"tasks_file": str(tasks.resolve())}
        source["sha256"] = env.split_manifest().get("source_sha256", "")
    else:
        plan = [i for split in splits for i in env.items(split)]  # type: ignore[arg-type]
        source = dict(env.split_manifest()) | {"splits": list(splits)}
    if not plan:
        raise InputError(f"{arm.path}: no tasks (splits {', '.join(splits)})")
    if wanted:
        known = {i.id for i in plan}
        unknown = [t for t in wanted if t not in known]
        if unknown:
            some = ", ".join(i.id for i in plan[:3])
            raise InputError(
                f"--task {unknown[0]}: unknown task id ({len(plan)} tasks planned, e.g. {some})"
            )
        plan = [i for i in plan if i.id in set(wanted)]
    return plan, source


def _attempt_records(episode: Episode, call_ids: list[str]) -> tuple[list[Any], list[str]]:
    """The events' per-attempt records, and the texts they refer to by hash."""
    from skillopt.machine.core.canonical import sha256_text
    from skillopt.machine.core.events import BenchAttempt, Tokens

    records, texts = [], []
    for i, a in enumerate(episode.attempts):
        stdout, stderr = _excerpt(a.stdout), _excerpt(a.stderr)
        texts += [a.reply, stdout, stderr] + ([a.program] if a.program else [])
        records.append(
            BenchAttempt(
                attempt=a.index,
                kind=a.kind,  # type: ignore[arg-type]
                outcome=a.outcome,  # type: ignore[arg-type]
                category=a.category,
                detail=a.detail,
                exit_code=a.exit_code,
                tokens=Tokens(input=a.input_tokens, output=a.output_tokens, cached=a.cached_tokens),
                same_as=a.same_as,
                reply_hash=sha256_text(a.reply),
                program_hash=sha256_text(a.program) if a.program else None,
                stdout_hash=sha256_text(stdout),
                stderr_hash=sha256_text(stderr),
                call_id=call_ids[i] if i < len(call_ids) else "",
            )
        )
    return records, texts


def run_bench(
    arms: list[Arm],
    plan: list[Item],
    source: dict[str, Any],
    limit: int | None,
    db: str,
    name: str | None,
    executor: str = "local",
    workers: int = 1,
) -> dict[str, Any]:
    """Record the plan (or find the bench that has it), run what is not recorded yet (the
    first `limit` tasks only, if given; on `executor`, `workers` at a time) and return the
    bench's report data."""
    from skillopt.commands.version import skillopt_version
    from skillopt.ledger.ledger import Ledger
    from skillopt.machine.core.canonical import canonical_json, sha256_text
    from skillopt.machine.core.events import BenchStarted

    planned = BenchStarted(
        run_name="",
        env="closed_loop",
        arms=[_arm_record(arm, plan) for arm in arms],
        task_ids=[i.id for i in plan],
        source=source,
        skillopt_version=skillopt_version(),
        warnings=_warnings(arms),
    )
    # The name derives from the plan alone, so that the same command resumes the same bench.
    # From the payload: fields added later are in it only when used, so older plans keep it.
    identity = {
        k: v for k, v in planned.payload().items() if k not in ("run_name", "skillopt_version")
    }
    name = name or "bench-" + sha256_text(canonical_json(identity))[:10]
    planned = planned.model_copy(update={"run_name": name})
    finished = make_models(arms, db, name)
    if finished is not None:  # no model can be made, but the bench is done: its report
        return finished
    ledger = Ledger.open(db, create=True)
    try:
        run_id = _open_or_create(ledger, name, planned, identity, arms)
        runner = _executor(executor, arms, ledger, run_id)
        try:
            _work(ledger, run_id, arms, plan, limit, runner, workers)
        finally:
            runner.close()
        return bench_report(ledger, run_id)
    finally:
        ledger.close()


def _executor(kind: str, arms: list[Arm], ledger: Ledger, run_id: str) -> Executor:
    """Threads of this process, or Ray tasks (`--executor ray`: the first config's `ray`
    settings; every config's target key variable reaches the workers)."""
    from skillopt.commands.bench_units import BenchPort, BenchRecipe
    from skillopt.commands.context import role_settings
    from skillopt.commands.journal import LedgerCalls

    calls = LedgerCalls(ledger)
    if kind != "ray":
        from skillopt.commands.executors.local import LocalExecutor

        return LocalExecutor(
            BenchPort([a.env for a in arms], [a.model for a in arms], calls, run_id)
        )
    from skillopt.commands.executors.on_ray import RayExecutor

    first = arms[0].config
    names = [a.config.models.target.api_key_env for a in arms]
    env_vars = list(dict.fromkeys([*first.ray.env_vars, *(n for n in names if n)]))
    config = first.model_copy(update={"ray": first.ray.model_copy(update={"env_vars": env_vars})})
    recipe = BenchRecipe(
        tuple(a.env for a in arms), tuple(role_settings(a.config, "target") for a in arms), run_id
    )
    return RayExecutor(config, recipe, calls)


def _warnings(arms: list[Arm]) -> list[str]:
    """Each config's environment warnings once (its model arms share the environment)."""
    out: list[str] = []
    for arm in arms:
        out += [
            w for w in (f"{arm.path.name}: {line}" for line in arm.env.warnings) if w not in out
        ]
    return out


def make_models(arms: list[Arm], db: str, name: str) -> dict[str, Any] | None:
    """Every arm's target model, before anything is written: a missing API key or an unknown
    backend is an InputError and the ledger stays as it was. The exception: a bench of this
    name already finished needs no model, and its report (returned) is what the command
    prints, as it always did."""
    from skillopt.adapters.registry import make_model
    from skillopt.commands.context import role_settings

    for arm in arms:
        try:
            arm.model = make_model(role_settings(arm.config, "target"))
        except AdapterError as exc:
            report = _finished_report(db, name)
            if report is not None:
                return report
            raise InputError(f"{arm.path}: {exc}") from None
    return None


def _finished_report(db: str, name: str) -> dict[str, Any] | None:
    """The report of the finished bench `name` in an existing ledger, else None."""
    from skillopt.ledger.errors import LedgerError
    from skillopt.ledger.ledger import Ledger

    try:
        ledger = Ledger.open(db)  # never create=True: a bench that cannot start writes nothing
    except LedgerError:
        return None
    try:
        row = next((r for r in ledger.runs() if r.name == name and r.kind == "bench"), None)
        if row is None or _recorded(ledger, row.id)[2] is None:
            return None
        return bench_report(ledger, row.id)
    finally:
        ledger.close()


def _arm_record(arm: Arm, plan: list[Item]) -> BenchArm:
    """What bench.started records of an arm; every task of the plan must be in its env."""
    from skillopt.commands.context import fingerprint
    from skillopt.machine.core.canonical import sha256_text
    from skillopt.machine.core.events import BenchArm

    by_id = {i.id: i for s in SPLITS for i in arm.env.items(s)}  # type: ignore[arg-type]
    missing = [i.id for i in plan if i.id not in by_id]
    if missing:
        raise InputError(
            f"{arm.path}: task {missing[0]} is not in this config's environment "
            "(env.options.task_types?)"
        )
    target = arm.config.models.target
    return BenchArm(
        label=arm.label,
        config=arm.data,
        config_sha256=arm.config_sha256,
        backend=target.backend,
        model=target.model,
        skill_hash=sha256_text(arm.skill),
        retry_cap=arm.env.retry_cap,
        fingerprint=fingerprint([by_id[i.id] for i in plan]),
        context=arm.env.context.record(),
    )


def _open_or_create(
    ledger: Ledger, name: str, planned: BenchStarted, identity: dict[str, Any], arms: list[Arm]
) -> str:
    """The run id of the bench `name`: created with the plan, or an existing bench whose
    recorded plan is this one (resumed)."""
    from skillopt.commands.clock import utc_now
    from skillopt.machine.core.canonical import canonical_json, sha256_text
    from skillopt.machine.core.events import BenchStarted
    from skillopt.machine.reports.bench import plan_difference

    existing = next((r for r in ledger.runs() if r.name == name), None)
    if existing is None:
        run_id = "r" + sha256_text(canonical_json([name, identity]))[:12]
        snapshot = {"kind": "bench", "configs": [a.data for a in arms]}
        ledger.create_run(run_id, name, snapshot, utc_now(), planned, kind="bench")
        return run_id
    if existing.kind != "bench":
        raise InputError(f"run {name!r} is a {existing.kind} run, not a bench; pick another --name")
    first = ledger.read(existing.id, 1)
    recorded = first[0].event() if first else None
    if not isinstance(recorded, BenchStarted):
        raise InputError(f"bench {name!r} has no bench.started event; pick another --name")
    why = plan_difference(recorded, planned)
    if why is not None:
        raise InputError(
            f"bench {name!r} was started with another plan ({why}); repeat its command or "
            "pick another --name"
        )
    return existing.id


def recorded_plan(ledger: Ledger, run_id: str) -> BenchStarted:
    """A bench's bench.started (its plan), read without the rest of its events."""
    from skillopt.ledger.errors import CorruptEvent
    from skillopt.machine.core.events import BenchStarted

    first = ledger.read(run_id, 1)
    event = first[0].event() if first else None
    if not isinstance(event, BenchStarted):
        raise CorruptEvent(run_id, 1, "a bench run must start with bench.started")
    return event


def _recorded(
    ledger: Ledger, run_id: str
) -> tuple[BenchStarted, list[BenchTask], BenchCompleted | None, list[StoredEvent]]:
    """(bench.started, bench.task events, bench.completed or None, every stored event)."""
    from skillopt.ledger.errors import CorruptEvent
    from skillopt.machine.core.events import BenchCompleted, BenchStarted, BenchTask

    stored = ledger.read(run_id)
    events = [e.event() for e in stored]
    if not events or not isinstance(events[0], BenchStarted):
        raise CorruptEvent(run_id, 1, "a bench run must start with bench.started")
    tasks = [e for e in events if isinstance(e, BenchTask)]
    completed = next((e for e in events if isinstance(e, BenchCompleted)), None)
    return events[0], tasks, completed, stored


def _work(
    ledger: Ledger,
    run_id: str,
    arms: list[Arm],
    plan: list[Item],
    limit: int | None,
    executor: Executor,
    workers: int,
) -> None:
    """Run every (task, config) of the plan not recorded yet on the executor, at most
    `workers` at a time; one event per finished task, in the plan's order."""
    from skillopt.commands.bench_units import BenchJob, solve_unit
    from skillopt.commands.clock import utc_now
    from skillopt.machine.core.events import BenchCompleted
    from skillopt.machine.reports.bench import plan_keys, totals

    started, tasks, completed, stored = _recorded(ledger, run_id)
    if completed is not None:
        return
    seq = len(stored)
    done = {(t.arm, t.task_id) for t in tasks}
    allowed = {i.id for i in plan[:limit]}
    todo = [k for k in plan_keys(started) if k not in done and k[1] in allowed]
    items = [{i.id: i for s in SPLITS for i in a.env.items(s)} for a in arms]  # type: ignore[arg-type]
    total = len(plan_keys(started))
    units = [(arm_index, items[arm_index][task_id]) for arm_index, task_id in todo]
    job = BenchJob(tuple(a.skill for a in arms))
    results = executor.ordered(solve_unit, job, units, workers)  # type: ignore[arg-type]
    try:
        seq = _record_tasks(
            ledger, run_id, arms, items, todo, len(done), total, results, seq, tasks
        )
    finally:
        getattr(results, "close", lambda: None)()  # units not started are dropped
    if len(tasks) == len(plan_keys(started)):
        ledger.append(run_id, seq, [BenchCompleted(totals=totals(started, tasks))], utc_now())


def _record_tasks(
    ledger: Ledger,
    run_id: str,
    arms: list[Arm],
    items: list[dict[str, Item]],
    todo: list[tuple[int, str]],
    done: int,
    total: int,
    results: Any,
    seq: int,
    tasks: list[Any],
) -> int:
    """Append one bench.task per finished unit, in the plan's order (`tasks` grows); the seq
    of the run's last event."""
    from skillopt.commands.clock import utc_now
    from skillopt.commands.executors import ExecutorLost
    from skillopt.ledger.errors import ConflictError
    from skillopt.machine.core.events import BenchTask

    for n, (arm_index, task_id) in enumerate(todo, start=done + 1):
        arm, item = arms[arm_index], items[arm_index][task_id]
        try:
            episode, call_ids, wall = next(results)
        except ExecutorLost:
            raise
        except Exception as exc:
            raise RunFailed(
                f"bench stopped at task {task_id} ({arm.label}): {type(exc).__name__}: {exc}; "
                f"the {n - 1} task runs recorded are kept, the same command continues"
            ) from exc
        attempts, texts = _attempt_records(episode, call_ids)
        trajectory = arm.env.trajectory(item, episode)
        (trajectory_hash,) = ledger.put_blobs([trajectory])
        ledger.put_blobs(texts)
        event = BenchTask(
            arm=arm_index,
            task_id=task_id,
            task_type=item.task_type,
            expected=episode.expected,
            outcome=episode.outcome,  # type: ignore[arg-type]
            hard=episode.hard,
            soft=episode.soft,
            fail_reason=episode.fail_reason,
            attempts=attempts,
            trajectory_hash=trajectory_hash,
        )
        try:
            (stored,) = ledger.append(run_id, seq, [event], utc_now())
        except ConflictError as exc:
            raise RunFailed(f"{exc}; the tasks recorded so far are kept") from None
        seq = stored.seq
        sandbox = [round(a.wall_time_s, 4) for a in episode.attempts]
        ledger.put_timing(run_id, seq, wall, json.dumps({"sandbox_s": sandbox}))
        tasks.append(event)
        sys.stderr.write(
            f"[{n}/{total}] {task_id} ({arm.label}): {episode.outcome} after "
            f"{len(episode.attempts)} attempt(s), {wall:.2f}s\n"
        )
    return seq


def bench_report(ledger: Ledger, run_id: str) -> dict[str, Any]:
    """The JSON report of a bench run, from the ledger alone."""
    from skillopt.machine.reports.bench import report_data

    started, tasks, completed, stored = _recorded(ledger, run_id)
    row = ledger.find_run(run_id)
    keys = {
        e.seq: (e.payload["arm"], e.payload["task_id"]) for e in stored if e.type == "bench.task"
    }
    wall, sandbox = {}, {}
    for seq, timing in ledger.timings(run_id).items():
        if seq in keys:
            wall[keys[seq]] = timing.wall_time_s
            sandbox[keys[seq]] = json.loads(timing.detail).get("sandbox_s", [])
    run = {"name": row.name, "id": row.id, "created_at": row.created_at}
    return report_data(run, started, tasks, completed, wall, sandbox)


def bench_phase(ledger: Ledger, run_id: str) -> tuple[int, str]:
    """(events, a status phrase) of a bench run, for `skillopt runs`."""
    from skillopt.machine.reports.bench import status

    started, tasks, completed, stored = _recorded(ledger, run_id)
    return len(stored), status(started, tasks, completed)
