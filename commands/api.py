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

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from skillopt.commands.errors import InputError

if TYPE_CHECKING:
    from skillopt.commands.context import Progress
    from skillopt.ledger.store import Ledger as Store
    from skillopt.ledger.tables import RunRow
    from skillopt.machine.core.state import TrainerState

ReportFormat = Literal["md", "json", "html"]


def version() -> str:
    """The installed skillopt's version (recorded in every run.created)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("skillopt")
    except PackageNotFoundError:
        return "0+unknown"


# -- the functions the CLI and the Python API share --------------------------------------------


@dataclass(frozen=True)
class Created:
    run_name: str
    run_id: str
    event: Any  # the stored run.created
    warnings: list[str]


def _resolve_data_paths(data: dict[str, Any], config_path: Path) -> tuple[Any, dict[str, Any]]:
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


def read_text(path: Path, what: str) -> str:
    try:
        return path.read_text("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: {exc.strerror}") from None


def create_run(
    store: Store, config_path: Path, name: str | None, overrides: Sequence[str]
) -> Created:
    """Validate the config (its `_base_` files and overrides), check the environment can give
    its splits, and record run.created. Nothing is executed yet."""
    from skillopt.commands.clock import utc_now
    from skillopt.commands.config_files import load_config
    from skillopt.commands.context import build_adapters, split_items
    from skillopt.commands.runner import status_of
    from skillopt.machine.core.canonical import canonical_json, sha256_text
    from skillopt.machine.core.events import RunCreated
    from skillopt.machine.loop.reducer import reduce

    loaded = load_config(config_path, list(overrides))
    config, data = _resolve_data_paths(loaded.data, config_path)
    skill_path = (config_path.parent / config.env.skill_init).resolve()
    if not skill_path.is_file():
        raise InputError(f"env.skill_init: initial skill file {skill_path} not found")
    skill = read_text(skill_path, "initial skill file")
    env, _, _ = build_adapters(config)
    split_items(env, config)
    run_name = name or config_path.stem
    run_id = "r" + sha256_text(canonical_json([run_name, data]))[:12]
    created = RunCreated(
        run_name=run_name,
        config=data,
        config_sha256=sha256_text(read_text(config_path, "config file")),
        initial_skill_hash=store.put_blob(skill),
        skillopt_version=version(),
        warnings=loaded.warnings,
    )
    status = status_of(reduce([created]))
    stored = store.create_run(run_id, run_name, data, utc_now(), created, status=status)
    return Created(run_name, run_id, stored, list(loaded.warnings))


def run_to_end(
    store: Store,
    row: RunRow,
    progress: Progress | None = None,
    max_stages: int | None = None,
) -> TrainerState:
    """Run stages until the run is done (or `max_stages`), resuming where the ledger ends."""
    from skillopt.commands.context import Progress
    from skillopt.commands.runner import load_state, make_context, run_stage

    state = load_state(store, row.id)
    ctx = make_context(store, row.id, state, progress or Progress())
    stages = 0
    while max_stages is None or stages < max_stages:
        result = run_stage(store, row.id, state, ctx)
        if result is None:
            break
        state, stages = result.state, stages + 1
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
    from skillopt.ledger.store import Ledger as Store

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
        from skillopt.ledger.store import Ledger as Store

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

    path = Path(config)
    assignments = (
        [f"{k}={v}" for k, v in overrides.items()]
        if isinstance(overrides, Mapping)
        else list(overrides or [])
    )
    with Ledger(str(db), create=True) as ledger:
        run_name = name or path.stem
        try:
            row = ledger.store.find_run(run_name, "train")
        except LedgerError:
            create_run(ledger.store, path, run_name, assignments)
            row = ledger.store.find_run(run_name, "train")
        else:
            _same_config(row, path, assignments)
        run_to_end(ledger.store, row, max_stages=max_stages)
        return Run(ledger.db, row)


def _same_config(row: RunRow, path: Path, overrides: Sequence[str]) -> None:
    """A resumed run keeps its recorded config: refuse a different one, naming a key."""
    import json

    from skillopt.commands.config_files import load_config
    from skillopt.machine.decisions.fork import changes

    loaded = load_config(path, list(overrides))
    _, data = _resolve_data_paths(loaded.data, path)
    diff = changes(json.loads(row.config), data)
    if diff:
        key = sorted(diff)[0]
        raise InputError(
            f"run {row.name} exists with another {key} ({len(diff)} setting(s) differ); "
            "resume it with its own config, pick another name, or fork it"
        )
