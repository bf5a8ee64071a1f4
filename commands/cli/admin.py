"""Commands that check or maintain a ledger and its setup: verify, doctor, db upgrade, db
refresh-status."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from skillopt.commands.cli.common import (
    DEFAULT_DB,
    DbOpt,
    JsonOpt,
    RunOpt,
    cli_errors,
    emit_json,
    open_ledger,
    open_run,
)
from skillopt.commands.errors import CheckFailed
from skillopt.ledger.errors import CorruptEvent
from skillopt.ledger.urls import masked_url, scrub


@cli_errors
def verify(db: DbOpt = DEFAULT_DB, json_: JsonOpt = False) -> None:
    """Check the database's own integrity (SQLite), the schema version, every run's hash
    chain and kind, that every payload is the text written, every stored status view, that
    the call journal holds every call the events name as they name it (reply, tokens), and
    that every stored text (blob) hashes to its key and none that a call names is missing;
    exit 1 naming the first problem."""
    from skillopt.ledger.database import head_revision
    from skillopt.ledger.journal import check_digests

    ledger = open_ledger(db)
    revision = ledger.schema_revision()
    integrity = _integrity(ledger)
    rows, journal_problem = _journal_rows(ledger)
    results = [_check_run(ledger, row, rows) for row in ledger.runs()]
    first_bad = integrity or journal_problem or _orphan_problem(ledger)
    first_bad = first_bad or next(
        (f"run {r['run']}: seq {r['seq']}: {r['problem']}" for r in results if not r["ok"]), None
    )
    if first_bad is None and journal_problem is None:  # after the events': those say more
        first_bad = check_digests(rows.calls)  # rows no event names (failed attempts) too
    missing = _missing_call_texts(ledger) if journal_problem is None else []
    if missing and first_bad is None:
        first_bad = f"call {missing[0]}: its request or reply text is missing from the blobs"
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


def _orphan_problem(ledger: Any) -> str | None:
    orphans = ledger.orphans()
    if not orphans:
        return None
    table, run_id = orphans[0]
    return f"table {table} holds rows of run id {run_id}, which the runs table does not have (tampered?)"


def _integrity(ledger: Any) -> str | None:
    """SQLite's own check of its pages and indexes (a row an index disagrees with...)."""
    if ledger.engine.dialect.name != "sqlite":
        return None
    with ledger.engine.connect() as conn:
        found = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check").fetchall()]
    return None if found == ["ok"] else f"database integrity: {found[0]}"


@dataclass
class _Journal:
    rows: dict[str, Any]  # call id -> JournalRow
    runs: set[str]  # runs with at least one journaled call
    calls: list[Any]  # the rows as stored (CallRow), for their digests
    texts: set[str]  # the keys of the stored texts (blobs)


def _journal_rows(ledger: Any) -> tuple[_Journal, str | None]:
    """Every journaled call by id, as the check against the events reads them."""
    from sqlalchemy.exc import DBAPIError

    from skillopt.ledger.journal import Journal
    from skillopt.machine.verify.journal import JournalRow

    try:
        calls = Journal(ledger).all_rows()
    except DBAPIError:  # e.g. a byte that is not UTF-8 in a text column
        problem = "call journal: a row holds bytes that are not text (tampered?)"
        return _Journal({}, set(), [], ledger.blob_keys()), problem
    rows = {
        c.id: JournalRow(
            c.status,
            c.role,
            c.response_blob,
            (c.tokens_in, c.tokens_out, c.cache_read),
            c.cache_write or 0,
        )
        for c in calls
    }
    return _Journal(rows, {c.run_id for c in calls}, calls, ledger.blob_keys()), None


def _missing_call_texts(ledger: Any) -> list[str]:
    from skillopt.ledger.journal import Journal

    return Journal(ledger).missing_blobs()


FIRST_EVENT = {"train": "run.created", "bench": "bench.started"}


def _check_run(ledger: Any, row: Any, journal: _Journal) -> dict[str, Any]:
    """One run's verdict: its hash chain, its kind, its payloads as written, a training
    run's stored status view and its calls in the journal; the first problem, by seq."""
    from skillopt.ledger.events import check_chain
    from skillopt.machine.verify.journal import check_journal

    events: int | None = None
    try:
        stored = ledger.read(row.id)
        events, problem = len(stored), check_chain(stored)
    except CorruptEvent as exc:  # a stored event that is not text or not JSON
        problem = (exc.seq, exc.problem)
    if problem is None and not stored:  # the row and its first event are written together
        problem = (1, "the run has no events")
    if problem is None and stored and stored[0].type != FIRST_EVENT.get(row.kind):
        problem = (1, f"the run is of kind {row.kind!r} but starts with {stored[0].type}")
    if problem is None and stored:
        problem = _run_row_problem(row, stored)
    if problem is None and (seq := ledger.noncanonical_payload(row.id)) is not None:
        problem = (seq, "payload is not the text that was written (its value is; tampered?)")
    if problem is None:
        problem = _missing_event_text(stored, journal.texts)
    # A run without a single journaled call predates the journal (schema 0001) or never ran a
    # stage: its events are checked against the journal once it has one.
    if problem is None and row.kind == "train" and row.id in journal.runs:
        try:
            problem = check_journal([(e.seq, e.event()) for e in stored], journal.rows)
        except CorruptEvent as exc:
            problem = (exc.seq, exc.problem)
    view = "none"
    if problem is None and row.kind == "train":
        view, problem = _check_status_view(ledger, row.id, stored)
    return {
        "run": row.name,
        "events": events,
        "ok": problem is None,
        "seq": problem[0] if problem else None,
        "problem": problem[1] if problem else None,
        "status_view": view,
    }


def _run_row_problem(row: Any, stored: list[Any]) -> tuple[int, str] | None:
    """The runs table's row against the events it stands for: its name, creation time and
    (a training run's) config are what its first events record; a resume compares a config
    with the row's, so an edited row would change what a run accepts."""
    import json

    from skillopt.machine.core.canonical import canonical_json

    first = stored[0]
    if row.name != first.payload.get("run_name"):
        return (
            1,
            f"the runs table names the run {row.name!r}, its {first.type} {first.payload.get('run_name')!r}",
        )
    if row.created_at != first.recorded_at:
        return 1, f"the runs table's created_at {row.created_at!r} is not its first event's time"
    if row.kind == "train":
        changed = [e for e in stored if e.type == "settings.changed"]
        config = (changed[-1] if changed else first).payload.get("config")
        try:
            same = canonical_json(json.loads(row.config)) == canonical_json(config)
        except ValueError:
            same = False
        if not same:
            seq = changed[-1].seq if changed else 1
            return seq, "the runs table's config is not the config this run recorded (tampered?)"
    return None


def _missing_event_text(stored: list[Any], texts: set[str]) -> tuple[int, str] | None:
    """The first event naming a text (a `*_hash` field) that is not stored: (seq, what)."""
    from skillopt.machine.verify.common import BY_HASH_ONLY, text_keys

    for e in stored:
        for field, key in text_keys(e.payload):
            if key not in texts and field not in BY_HASH_ONLY.get(e.type, ()):
                return e.seq, f"{e.type}: {field} {key[:12]} is missing from the blobs"
    return None


def _check_status_view(
    ledger: Any, run_id: str, stored: list[Any]
) -> tuple[str, tuple[int, str] | None]:
    """(ok | stale | none, problem): the run's stored status view must be what its events up
    to the view's seq fold to, byte for byte. One of another format is stale: never shown."""
    from skillopt.commands.runner import fold, status_of
    from skillopt.ledger.events import check_chain
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


@cli_errors
def doctor(
    config_path: Annotated[
        Path | None, typer.Argument(metavar="[CONFIG]", help="A config file; else --db/--run.")
    ] = None,
    db: DbOpt = DEFAULT_DB,
    run: RunOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Check what a run needs before paying for one: per role (target, optimizer, judge) one
    tiny plain request, and for the roles that must answer in JSON (optimizer, judge) one
    structured-output request that must come back as valid JSON of the requested schema; with
    a CONFIG, also load its dataset and show the split sizes. Exit 1 naming the role and the
    fix when something does not work."""
    from skillopt.commands.runner import load_state

    if config_path is not None:
        from skillopt.commands.api import resolve_data_paths
        from skillopt.commands.config_files import load_config

        loaded = load_config(config_path, [])
        config, _ = resolve_data_paths(loaded.data, config_path)  # data relative to the file
        warnings = [*loaded.warnings, *_cache_warnings(config, config_path)]
    else:
        ledger, row = open_run(db, run)
        state = load_state(ledger, row.id)
        config = state.cfg
        warnings = [w for w in state.warnings if "cacheable prefix" in w]  # said at init
    for line in warnings:
        sys.stderr.write(f"warning: {line}\n")
    roles = ("target", "optimizer") + (("judge",) if config.models.judge else ())
    results = [_probe(config, role) for role in roles]
    sizes = _dataset_sizes(config) if config_path is not None and not json_ else None
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
        if sizes is not None:
            print("dataset   " + ", ".join(f"{n} {split}" for split, n in sizes.items()) + " items")
    if not all(r["ok"] for r in results):
        raise CheckFailed("a model role does not work; see above")


def _cache_warnings(config: Any, config_path: Path) -> list[str]:
    """The prompt-cache warning (a role's cacheable prefix under its model's minimum), for
    the config's initial skill; nothing when the skill file is missing (init says so)."""
    from skillopt.commands.caching import cache_warnings

    skill = (config_path.parent / config.env.skill_init).resolve()
    return cache_warnings(config, skill.read_text("utf-8")) if skill.is_file() else []


def _dataset_sizes(config: Any) -> dict[str, int]:
    """The items per split the config's environment gives (as `init` would record them)."""
    from skillopt.commands.context import build_adapters, split_items

    env, _, _ = build_adapters(config)
    return {split: len(rows) for split, rows in split_items(env, config).items()}


PROBE_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def _structured(model: Any, role: str, settings: Any) -> str:
    """'' when the role answers a structured-output request with JSON of the schema, else
    what is wrong and the likely fix."""
    from skillopt.adapters.protocol import ChatRequest, Message
    from skillopt.machine.decisions.health import likely_cause
    from skillopt.machine.optimizer.replies import ReplyError, extract_json_object

    ask = 'Reply with the JSON object {"ok": true} and nothing else.'
    request = ChatRequest(
        role,  # type: ignore[arg-type]
        "You are a health check.",
        (Message("user", ask),),
        "doctor",
        max_tokens=64,
        json_schema=PROBE_SCHEMA,
    )
    reply = model.complete(request)
    try:
        value = extract_json_object(reply.text)
    except ReplyError as exc:
        structured = bool(settings.options.get("structured_output", True))
        cause = likely_cause(str(exc), [reply.output_tokens], 64, structured, role)
        return f"structured output: {exc} (reply {reply.text[:40]!r}); {cause}"
    if value.get("ok") is not True:
        return f'structured output: the reply is JSON but not {{"ok": true}}: {reply.text[:60]!r}'
    return ""


def _probe(config: Any, role: str) -> dict[str, Any]:
    """One tiny request to the role's model: ok and its reply, or the provider's error."""
    import time

    from skillopt.adapters.protocol import AdapterError, ChatRequest, Message
    from skillopt.adapters.registry import make_model
    from skillopt.commands.context import role_settings

    settings = role_settings(config, role)
    entry: dict[str, Any] = {
        "role": role,
        "backend": settings.backend,
        "model": settings.model,
        "base_url": settings.base_url and masked_url(settings.base_url),  # never a password
        "ok": False,
    }
    start = time.monotonic()
    try:
        model = make_model(settings)
        problem = _structured(model, role, settings) if role != "target" else ""
        reply = model.complete(
            ChatRequest(
                role,
                "You are a health check.",  # type: ignore[arg-type]
                (Message("user", "Reply with the word OK."),),
                "doctor",
                max_tokens=16,
            )
        )
        entry |= {"ok": not problem, "reply": reply.text[:40], "served_by": reply.model}
        entry |= {"structured": role != "target", **({"error": problem} if problem else {})}
    except (AdapterError, Exception) as exc:  # every failure is the answer here
        entry["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        entry["error"] = scrub(entry["error"], settings.base_url or "")
    entry["latency_ms"] = int((time.monotonic() - start) * 1000)
    return entry


@cli_errors
def db_refresh_status(db: DbOpt = DEFAULT_DB, run: RunOpt = None, json_: JsonOpt = False) -> None:
    """Fold training runs (all, or --run) and store each one's status view as of its last
    event, so that `skillopt status` answers without folding. `run` keeps it current by
    itself; this is for ledgers written before skillopt stored views."""
    from skillopt.commands.runner import load_state, status_of
    from skillopt.ledger.errors import ConflictError

    if run is not None:
        ledger, row = open_run(db, run)
        rows = [row]
    else:
        ledger = open_ledger(db)
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


@cli_errors
def db_upgrade(db: DbOpt = DEFAULT_DB) -> None:
    """Upgrade the ledger schema to this skillopt's version (opening a ledger also does it)."""
    ledger = open_ledger(db)
    print(f"{ledger.location}: schema revision {ledger.schema_revision()}")
