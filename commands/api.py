"""skillopt's Python API: train a skill, open a ledger, read a run. The CLI is a layer over
these same functions (creating a run, running it to the end, rendering a report, resolving a
skill REF), so a script and a terminal get the same runs, bytes and errors.

    import skillopt

    run = skillopt.train("examples/sim.yaml", db="runs.db", overrides=["train.num_epochs=2"])
    print(run.status()["best_score"])
    print(run.skill("best"))
    open("report.md", "w").write(run.report("md"))

    with skillopt.open("runs.db") as ledger:
        for info in ledger.runs():
            print(info.name, info.kind)

Errors are exceptions: `InputError` for bad input (a config key, a file, a REF: the CLI's exit
2), `LedgerError` for a ledger that cannot be used, `RunFailed` when a stage fails (the failure
is recorded first; `train` again resumes). Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from skillopt.commands.errors import InputError

if TYPE_CHECKING:
    from skillopt.commands.context import Progress
    from skillopt.commands.runner import StageResult
    from skillopt.ledger.ledger import Ledger as Store
    from skillopt.ledger.tables import RunRow
    from skillopt.machine.core.state import TrainerState

ReportFormat = Literal["md", "json", "html"]


# -- the functions the CLI and the Python API share --------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """A run checked and ready to record: nothing is written before every input is checked."""

    run_name: str
    run_id: str
    data: dict[str, Any]  # the resolved config run.created records
    skill: str
    config_text: str
    warnings: list[str]  # recorded in run.created, printed by `init`, shown by the report
    sizes: dict[str, int]  # items per split


def resolve_data_paths(data: dict[str, Any], config_path: Path) -> tuple[Any, dict[str, Any]]:
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
    options = env.get("options") or {}
    skill_dir = options.get("skill_dir")  # closed_loop's documentation modules: the same rule
    if env.get("name") == "closed_loop" and isinstance(skill_dir, str) and skill_dir:
        env["options"] = {**options, "skill_dir": str((config_path.parent / skill_dir).resolve())}
    data = {**data, "env": env}
    return validate_config(data), data


def refuse_recorded_secrets(data: dict[str, Any]) -> None:
    """A config is recorded whole in its run's first event: a URL in it with a credential is
    refused (naming the key, never the value)."""
    from skillopt.machine.config.secrets import credential_keys

    found = credential_keys(data)
    if found:
        raise InputError(
            f"{found[0]}: the URL carries a credential (a password or a key), and the config "
            "is recorded in the ledger; put the key in the environment variable named by the "
            "role's api_key_env"
        )


def prepare_run(config_path: Path, name: str | None, overrides: Sequence[str]) -> Prepared:
    """Validate the config (its `_base_` files and overrides), read the initial skill and check
    the environment gives its splits; warn about splits too small to trust."""
    from skillopt.commands.caching import cache_warnings
    from skillopt.commands.config_files import load_config
    from skillopt.commands.context import build_adapters, split_items
    from skillopt.commands.files import read_text
    from skillopt.machine.core.canonical import canonical_json, sha256_text
    from skillopt.machine.decisions.plans import split_warnings

    loaded = load_config(config_path, list(overrides))
    config, data = resolve_data_paths(loaded.data, config_path)
    refuse_recorded_secrets(data)
    skill_path = (config_path.parent / config.env.skill_init).resolve()
    if not skill_path.is_file():
        raise InputError(f"env.skill_init: initial skill file {skill_path} not found")
    skill = read_text(skill_path, "initial skill file")
    if config.tracking.mlflow_uri is not None:
        from skillopt.commands.tracking import require_mlflow

        require_mlflow()  # a missing extra: said at init, not at the first step
    from skillopt.commands.executors import require_executor

    require_executor(config)  # the same for train.executor: ray
    env, _, _ = build_adapters(config)
    sizes = {split: len(rows) for split, rows in split_items(env, config).items()}
    e = config.evaluation
    warnings = [*loaded.warnings, *split_warnings(sizes, e.min_selection_items, e.eval_test)]
    warnings += cache_warnings(config, skill)  # recorded: the report says it too
    run_name = name or config_path.stem
    run_id = "r" + sha256_text(canonical_json([run_name, data]))[:12]
    text = read_text(config_path, "config file")
    return Prepared(run_name, run_id, data, skill, text, warnings, sizes)


def measure_workload(config: Any, prepared: Prepared) -> Any:
    """What `estimate` measures: split sizes, the skill's length, mean prompt and answer
    lengths of the items, the optimizer's templates, a judge's rubric."""
    from skillopt.adapters.environments.judge import SYSTEM
    from skillopt.commands.context import build_adapters, load_template, split_items
    from skillopt.machine.decisions.estimate import Workload, tokens

    env, _, _ = build_adapters(config)
    items = [i for rows in split_items(env, config).values() for i in rows]

    def answer(data: Any) -> str:
        found = data.get("expected") if isinstance(data, dict) else None
        found = found if found is not None else (data.get("answers") or [""])[0]
        return str(found or "")

    answers = [len(answer(i.data)) for i in items]
    answer_chars = sum(answers) / len(answers) if answers and any(answers) else 200.0
    templates = {
        purpose: len(load_template(name))
        for purpose, name in (
            ("reflect", "reflect_failure"),
            ("merge", "merge"),
            ("rank", "rank"),
            ("budget", "budget"),
            ("rewrite", "rewrite"),
            ("slow_update", "slow_update"),
            ("meta_skill", "meta_skill"),
        )
    }
    judges = [s.judge for s in getattr(env, "scorers", []) if getattr(s, "judge", None)]
    return Workload(
        sizes=prepared.sizes,
        skill_chars=len(prepared.skill),
        prompt_chars=sum(len(i.prompt) for i in items) / max(1, len(items)),
        answer_chars=answer_chars,
        target_reply_tokens=max(16, 2 * tokens(answer_chars)),
        template_chars=templates,
        judge_chars=sum(len(j.rubric) + len(SYSTEM) for j in judges) // len(judges)
        if judges
        else None,
        judge_calls=len(judges),
    )


def record_run(store: Store, prepared: Prepared) -> Any:
    """Record run.created for a prepared run; the stored event."""
    from skillopt.commands.clock import utc_now
    from skillopt.commands.runner import status_of
    from skillopt.commands.version import skillopt_version
    from skillopt.machine.core.canonical import sha256_text
    from skillopt.machine.core.events import RunCreated
    from skillopt.machine.loop.reducer import reduce

    p = prepared
    created = RunCreated(
        run_name=p.run_name,
        config=p.data,
        config_sha256=sha256_text(p.config_text),
        initial_skill_hash=store.put_blob(p.skill),
        skillopt_version=skillopt_version(),
        warnings=p.warnings,
    )
    status = status_of(reduce([created]))
    return store.create_run(p.run_id, p.run_name, p.data, utc_now(), created, status=status)


def run_to_end(
    store: Store,
    row: RunRow,
    progress: Progress | None = None,
    max_stages: int | None = None,
    state: TrainerState | None = None,
    on_stage: Callable[[StageResult], None] | None = None,
) -> TrainerState:
    """Run stages until the run is done (or `max_stages`), resuming where the ledger ends
    (`state`: the run folded already); `on_stage` hears of each stage run."""
    from skillopt.commands.context import LedgerGone, Progress
    from skillopt.commands.errors import RunFailed
    from skillopt.commands.runner import load_state, make_context, run_stage
    from skillopt.commands.tracking import LiveMirror

    state = state if state is not None else load_state(store, row.id)
    mirror = LiveMirror.of(store, row, state)  # tracking.mlflow_uri; its extra is checked here
    ctx = make_context(store, row.id, state, progress or Progress())
    stages = 0
    try:
        while max_stages is None or stages < max_stages:
            result = run_stage(store, row.id, state, ctx)
            if result is None:
                break
            state, stages = result.state, stages + 1
            if mirror is not None:
                mirror.after(state)
            if on_stage is not None:
                on_stage(result)
    finally:
        ctx.close()
        if mirror is not None:  # what the last stages (or a failure) left unlogged
            mirror.after(state, final=True)
    if ctx.ledger_file is not None:  # the last append too went to the ledger the run opened
        try:
            ctx.ledger_file.check()
        except LedgerGone as exc:
            raise RunFailed(str(exc)) from None
    return state


def render_report(
    store: Store, state: TrainerState, fmt: ReportFormat, chart_name: str | None = None
) -> str:
    """The report, a pure function of the ledger: same ledger, same bytes."""
    import json

    from skillopt.machine.reports.html import render_html
    from skillopt.machine.reports.views import render_markdown, report_data

    data = report_data(state)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    texts = store.get_blobs([state.best_hash, state.initial_hash])
    if fmt == "html":
        return render_html(data, texts)
    if fmt == "md":
        return render_markdown(data, texts, chart_name)
    raise InputError(f"report format {fmt!r}: choose md, json or html")


def skill_hash(state: TrainerState, ref: str, run_name: str) -> str:
    """The full hash of the skill version a REF names (initial, best, step:N, a prefix...)."""
    from skillopt.machine.reports.history import RefError, resolve

    try:
        return resolve(state, ref)
    except RefError as exc:
        raise InputError(f"run {run_name}: {exc}") from None


def run_overview(store: Store) -> list[dict[str, Any]]:
    """Every run of a ledger, oldest first: {run, id, kind, created_at} and, for a training
    run, its status `view` (the stored one, else folded); a bench run (no trainer state) has
    `view` None, its `events` and a `phase` phrase, as does a run whose events do not fold.
    `skillopt runs` and the dashboard's runs page."""
    from skillopt.commands.bench_runner import bench_phase
    from skillopt.commands.runner import load_state
    from skillopt.ledger.errors import CorruptEvent
    from skillopt.machine.reports.status_format import STATUS_FORMAT
    from skillopt.machine.reports.views import status_view

    rows: list[dict[str, Any]] = []
    for row in store.runs():
        entry = {"run": row.name, "id": row.id, "kind": row.kind, "created_at": row.created_at}
        try:
            if row.kind == "bench":  # no trainer state: its own phrase
                events, phase = bench_phase(store, row.id)
                rows.append(
                    entry | {"view": None, "events": events, "phase": phase, "best_score": None}
                )
                continue
            view = store.current_status(row.id, STATUS_FORMAT)
            if view is None:
                view = status_view(load_state(store, row.id))
        except CorruptEvent as exc:  # one bad run must not hide the others
            rows.append(
                entry
                | {
                    "view": None,
                    "events": None,
                    "phase": f"corrupt at seq {exc.seq}",
                    "best_score": None,
                }
            )
            continue
        rows.append(entry | {"view": view})
    return rows


def call_rows(
    ledger: Store, run_id: str, stage: str | None, kind: str = "train"
) -> list[dict[str, Any]]:
    """The run's journaled calls (`skillopt calls`, the dashboard's journal); the cost of an
    answered one at its role's prices (a bench's: at the prices of the configuration its
    unit, `ARM:TASK`, names)."""
    from skillopt.ledger.journal import Journal
    from skillopt.machine.decisions.spending import token_cost
    from skillopt.machine.reports.bench import call_usd

    bench = kind == "bench"
    price_of = _bench_prices(ledger, run_id) if bench else _train_prices(ledger, run_id)
    caches = {} if bench else _train_caches(ledger, run_id)
    rows = []
    for c in Journal(ledger).calls(run_id, stage):
        ok = c.status == "ok"
        prices = price_of(c.role, c.unit)
        if not ok:
            cost = None
        elif bench:  # a bench's: as its report counts them
            cost = call_usd(prices, c.tokens_in, c.tokens_out, c.cache_read)
        else:  # cache writes at the role's write price
            cache = caches.get(c.role)
            tin, tout, read, written = c.tokens_in, c.tokens_out, c.cache_read, c.cache_write
            cost = token_cost(prices, tin, tout, read, written=written, cache=cache)
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
                "finish_reason": c.finish_reason,
                "cost": cost,
                "error": c.error_message,
            }
        )
    return rows


def _train_prices(ledger: Any, run_id: str) -> Any:
    """(role, unit) -> the role's prices in a training run's config."""
    from skillopt.commands.runner import load_state

    models = load_state(ledger, run_id).cfg.models

    def price(role: str, unit: str) -> Any:
        settings = getattr(models, role, None)  # None: a role no config has (tampered)
        return settings.prices if settings is not None else None

    return price


def _train_caches(ledger: Any, run_id: str) -> dict[str, Any]:
    """role -> the role's prompt-cache settings in a training run's config (None: none)."""
    from skillopt.commands.runner import load_state

    models = load_state(ledger, run_id).cfg.models
    return {
        r: getattr(getattr(models, r, None), "cache", None)
        for r in ("target", "optimizer", "judge")
    }


def _bench_prices(ledger: Any, run_id: str) -> Any:
    """(role, unit) -> the prices a bench recorded for the configuration of the unit (`ARM:TASK`):
    a bench has no trainer state to fold, its plan is its first event."""
    from skillopt.commands.bench_runner import recorded_plan
    from skillopt.machine.reports.bench import arm_prices

    prices = [arm_prices(arm) for arm in recorded_plan(ledger, run_id).arms]

    def price(role: str, unit: str) -> Any:
        arm = unit.split(":", 1)[0]
        return prices[int(arm)] if arm.isdigit() and int(arm) < len(prices) else None

    return price


# -- the Python API ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """One run of a ledger: `kind` is train (a training run) or bench (skillopt bench)."""

    name: str
    id: str
    kind: str
    created_at: str


@contextmanager
def _store(db: str) -> Iterator[Store]:
    from skillopt.ledger.ledger import Ledger as Store

    store = Store.open(db)
    try:
        yield store
    finally:
        store.close()


class Run:
    """A training run in a ledger. Each call opens the ledger, reads and closes it, so a Run
    holds no connection and shows the progress another process is making."""

    def __init__(self, db: str, row: RunRow) -> None:
        self._db = db
        self._row = row

    @property
    def name(self) -> str:
        return self._row.name

    @property
    def id(self) -> str:
        return self._row.id

    def status(self) -> dict[str, Any]:
        """The same keys and values as `skillopt status --json`."""
        import json

        from skillopt.commands.runner import load_state, status_of

        with _store(self._db) as store:
            return json.loads(status_of(load_state(store, self.id)).json)

    def skill(self, ref: str = "best") -> str:
        """The text of a skill version: initial, best, current/final, step:N, candidate:N, or
        a hash prefix of 4+ hex digits."""
        from skillopt.commands.runner import load_state

        with _store(self._db) as store:
            return store.get_blob(skill_hash(load_state(store, self.id), ref, self.name))

    def report(self, fmt: ReportFormat = "md") -> str:
        """The report as `skillopt report --md|--json|--html` prints it."""
        from skillopt.commands.runner import load_state

        with _store(self._db) as store:
            return render_report(store, load_state(store, self.id), fmt)

    def events(self, type: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        """The run's events as `skillopt events --json` lists them: seq, type, version,
        recorded_at, hash, payload; `type` keeps one event type."""
        with _store(self._db) as store:
            return [e.as_json() for e in store.read(self.id) if type in (None, e.type)]

    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, id={self.id!r})"


class Ledger:
    """A ledger: a SQLite path or any SQLAlchemy URL, upgraded to this version's schema when
    opened. Close it when done, or use it as a context manager."""

    def __init__(self, db: str, create: bool = False) -> None:
        from skillopt.ledger.ledger import Ledger as Store

        self.db = db
        self.store: Store = Store.open(db, create=create)

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        return [RunInfo(r.name, r.id, r.kind, r.created_at) for r in self.store.runs()]

    def run(self, name_or_id: str | None = None) -> Run:
        """A training run by name or id (None: the most recent one)."""
        row = self.store.find_run(name_or_id, "train")
        if row.kind != "train":
            raise InputError(f"run {row.name} is a bench run, not a training run")
        return Run(self.db, row)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(db: str | Path) -> Ledger:  # noqa: A001 - skillopt.open, as the API names it
    """Open a ledger that exists (it is upgraded to this version's schema if older)."""
    return Ledger(str(db))


def train(
    config: str | Path,
    *,
    db: str | Path,
    name: str | None = None,
    overrides: Sequence[str] | Mapping[str, Any] | None = None,
    max_stages: int | None = None,
) -> Run:
    """Train a skill from a config file (ours or the reference trainer's) into the ledger `db`
    (created if missing) and return the run once it is done.

    `name` defaults to the config file's stem. If the ledger already holds a run of that name,
    it is resumed exactly where it stopped; its config must be the one given (a run's settings
    never change: fork it with `skillopt fork` instead). `overrides` are `--set` assignments,
    ["train.num_epochs=2"] or {"train.num_epochs": 2}. `max_stages` stops early; call `train`
    again to go on."""
    from skillopt.ledger.errors import LedgerError

    assignments = (
        [f"{k}={v}" for k, v in overrides.items()]
        if isinstance(overrides, Mapping)
        else list(overrides or [])
    )
    prepared = prepare_run(Path(config), name, assignments)  # checked before any file is made
    with Ledger(str(db), create=True) as ledger:
        try:
            row = ledger.store.find_run(prepared.run_name, "train")
        except LedgerError:
            record_run(ledger.store, prepared)
            row = ledger.store.find_run(prepared.run_name, "train")
        else:
            _same_config(row, prepared.data)
        run_to_end(ledger.store, row, max_stages=max_stages)
        return Run(ledger.db, row)


def _same_config(row: RunRow, data: dict[str, Any]) -> None:
    """A resumed run keeps its recorded config: refuse a different one, naming a key."""
    import json

    from skillopt.machine.config.schema import (
        CONFIG_VERSION,
        DEFAULTS_BEFORE,
        default_of,
        recorded_config,
    )
    from skillopt.machine.decisions.fork import changes

    # The recorded config read as it was meant (keys added since get the values it ran with),
    # and an older config_version is no difference when the given config is simply current:
    # the run resumes with the rules it was recorded with either way.
    old = recorded_config(json.loads(row.config)).model_dump(mode="json")
    diff = changes(old, data)
    if diff.get("config_version", [None, None])[1] == CONFIG_VERSION:
        recorded = diff.pop("config_version")[0] or 1
        for key, (since, old_default) in DEFAULTS_BEFORE.items():
            # a default that changed since the recorded version: the old run's own default
            if recorded < since and diff.get(key) == [old_default, default_of(key)]:
                diff.pop(key)
    if diff:
        key = sorted(diff)[0]
        raise InputError(
            f"run {row.name} exists with another {key} ({len(diff)} setting(s) differ); "
            "resume it with its own config, pick another name, or fork it"
        )
