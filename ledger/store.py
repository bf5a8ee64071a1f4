"""The ledger: open (and upgrade) a database, append events with optimistic concurrency, read.

A ledger file holds many runs. Events of a run are gapless from seq 1 and chained by hash;
triggers reject UPDATE and DELETE. Blobs hold the texts that events refer to by sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from skillopt.ledger.errors import ConflictError, CorruptEvent, LedgerError, LedgerWriteError
from skillopt.ledger.schema_files import MIGRATIONS, head_of_files
from skillopt.ledger.tables import BlobRow, CallRow, EventRow, RunRow, StatusViewRow, TimingRow
from skillopt.machine.core.canonical import GENESIS_HASH, canonical_json, event_hash, sha256_text
from skillopt.machine.core.events import Event, parse_event

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

TABLES = ("runs", "events", "blobs")


@dataclass(frozen=True)
class StoredEvent:
    run_id: str
    seq: int
    type: str
    version: int
    payload: dict[str, Any]
    recorded_at: str
    prev_hash: str
    hash: str

    def event(self) -> Event:
        try:
            return parse_event(self.type, self.version, self.payload)
        except Exception as exc:  # pydantic errors are long; one line names the problem
            first = str(exc).splitlines()
            raise CorruptEvent(
                self.run_id, self.seq, f"{self.type} does not decode: {' '.join(first[:3])}"
            ) from None

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "type": self.type,
            "version": self.version,
            "recorded_at": self.recorded_at,
            "hash": self.hash,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class StatusView:
    """What `skillopt status` shows of a run after the events it is appended with: its format
    (the view's shape, so that one of another skillopt is never shown) and its JSON text."""

    format: int
    json: str


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON, and never written (canonical_json refuses them)."""
    raise ValueError(f"{name} is not a JSON value")


def database_url(db: str) -> str:
    """A path becomes a SQLite URL; anything with '://' is taken as an SQLAlchemy URL."""
    return db if "://" in db else f"sqlite:///{db}"


def _alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig  # alembic only loads to migrate

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def busy_timeout_s() -> float:
    """How long a writer waits for another process's lock (env SKILLOPT_BUSY_TIMEOUT_S)."""
    try:
        return max(0.0, float(os.environ.get("SKILLOPT_BUSY_TIMEOUT_S", "10")))
    except ValueError:
        return 10.0


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Transactions are begun explicitly (see _begin) so that writers can take the lock up front.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s() * 1000)}")
    cursor.close()


_REFUSED = {  # what SQLite says when it cannot write -> what the user reads
    "locked": "is locked by another process (waited {busy:g} s; env SKILLOPT_BUSY_TIMEOUT_S)",
    "busy": "is locked by another process (waited {busy:g} s; env SKILLOPT_BUSY_TIMEOUT_S)",
    "readonly": "is read-only (check the permissions of the file and its directory)",
    "read-only": "is read-only (check the permissions of the file and its directory)",
    "disk is full": "cannot grow: the disk (or the file size limit) is full",
    "disk i/o error": "could not be written: disk I/O error (a full disk or a file size limit?)",
}


def _refused_writes(location: str) -> Any:
    """A handle_error listener: a write the database refuses becomes LedgerWriteError, one
    line naming the ledger and the cause. SQLite has rolled the transaction back whole."""

    def translate(context: Any) -> None:
        if not isinstance(context.sqlalchemy_exception, sa.exc.OperationalError):
            return
        detail = str(context.original_exception).strip().splitlines()[0]
        for needle, why in _REFUSED.items():
            if needle in detail.lower():
                raise LedgerWriteError(
                    f"ledger {location} {why.format(busy=busy_timeout_s())}; "
                    "nothing of this write was recorded"
                ) from None

    return translate


def _begin(conn: Connection) -> None:
    writer = conn.get_execution_options().get("skillopt_writer", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


class Ledger:
    def __init__(self, engine: Engine, location: str) -> None:
        self.engine = engine
        self.location = location
        # The process's writers (rollout threads, the runner) take turns here; between them,
        # SQLite's busy handler would sleep in steps of up to 100 ms. Other processes still
        # wait on SQLite's own lock (busy timeout).
        self.write_lock = threading.RLock()

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, db: str, *, create: bool = False) -> Ledger:
        url = database_url(db)
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.parent.is_dir():
                raise LedgerError(f"--db {db}: directory {path.parent} does not exist")
            if not create and not path.exists():
                raise LedgerError(f"no ledger at {db} (create one with `skillopt init`)")
        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise LedgerError(f"--db {db}: not a usable database URL ({exc})") from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _begin)
            sa.event.listen(engine, "handle_error", _refused_writes(db))
        ledger = cls(engine, db)
        ledger._upgrade_or_refuse(create)
        return ledger

    def close(self) -> None:
        """Release connections; SQLite folds the WAL back into the file on the last close."""
        self.engine.dispose()

    def schema_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                tables = set(sa.inspect(conn).get_table_names())
                if "alembic_version" not in tables:
                    if tables:
                        raise LedgerError(
                            f"{self.location} is not a skillopt ledger "
                            f"(it has tables {', '.join(sorted(tables))} but no schema version)"
                        )
                    return None
                return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.DatabaseError as exc:
            raise LedgerError(
                f"{self.location} is not a skillopt ledger ({str(exc.orig).strip()})"
            ) from None

    def _upgrade_or_refuse(self, create: bool) -> None:
        revision = self.schema_revision()
        if revision is None and not create:  # never write a schema into a file on a read
            raise LedgerError(
                f"{self.location} is empty, not a skillopt ledger yet (`skillopt init` creates one)"
            )
        if revision is not None and revision == head_of_files():
            return  # up to date
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(_alembic_config())
        if revision is not None:
            try:
                script.get_revision(revision)
            except Exception:
                raise LedgerError(
                    f"{self.location} has schema revision {revision!r}, unknown to this skillopt: "
                    "it was written by a newer skillopt (upgrade skillopt) or is not a skillopt ledger"
                ) from None
        if revision != head_revision():
            self.upgrade()

    def upgrade(self, revision: str = "head") -> None:
        if self.engine.dialect.name == "sqlite":
            # WAL is a property of the file: set once, here, not by every (read-only) open.
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA journal_mode=WAL")
            finally:
                raw.close()
        from alembic import command as alembic_command

        cfg = _alembic_config()
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(skillopt_writer=True)
            cfg.attributes["connection"] = conn
            alembic_command.upgrade(cfg, revision)
            if conn.in_transaction():
                conn.commit()

    # -- runs --------------------------------------------------------------------------------

    def runs(self) -> list[RunRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(RunRow).order_by(RunRow.created_at, RunRow.name))
            return [RunRow(**row._mapping) for row in rows]

    def find_run(self, ref: str | None, kind: str | None = None) -> RunRow:
        """The run named (or with the id) `ref`; None: the most recent run (of `kind`, if given)."""
        runs = self.runs()
        if not runs:
            raise LedgerError(f"{self.location} holds no run yet (create one with `skillopt init`)")
        if ref is None:
            of_kind = [r for r in runs if kind is None or r.kind == kind]
            if not of_kind:
                what = "training" if kind == "train" else kind
                raise LedgerError(f"{self.location} holds no {what} run yet")
            return of_kind[-1]
        for run in runs:
            if ref in (run.name, run.id):
                return run
        names = ", ".join(r.name for r in runs)
        raise LedgerError(f"no run named {ref!r} in {self.location} (runs: {names})")

    def create_run(
        self,
        run_id: str,
        name: str,
        config: dict[str, Any],
        created_at: str,
        first: Event,
        kind: str = "train",
        status: StatusView | None = None,
    ) -> StoredEvent:
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(skillopt_writer=True)
            with conn.begin():
                taken = conn.execute(
                    sa.select(RunRow.id).where(sa.or_(RunRow.name == name, RunRow.id == run_id))
                ).first()
                if taken:
                    raise LedgerError(f"a run named {name!r} already exists; pick another --name")
                row = {"id": run_id, "name": name, "created_at": created_at}
                if kind != "train":  # the column's default; left out, a pre-0003 schema works too
                    row["kind"] = kind
                conn.execute(sa.insert(RunRow).values(**row, config=canonical_json(config)))
                stored = self._insert(conn, run_id, 0, GENESIS_HASH, [first], created_at)[0]
                _put_status(conn, run_id, stored.seq, stored.hash, status)
                return stored

    # -- events ------------------------------------------------------------------------------

    def read(self, run_id: str, until: int | None = None) -> list[StoredEvent]:
        query = sa.select(EventRow).where(EventRow.run_id == run_id)
        if until is not None:
            query = query.where(EventRow.seq <= until)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query.order_by(EventRow.seq)).all()
        except sa.exc.OperationalError as exc:
            if "decode" in str(exc.orig).lower():
                self._name_undecodable(run_id, until)  # raises CorruptEvent naming the seq
            raise
        out = []
        for r in rows:
            try:
                payload = json.loads(r.payload, parse_constant=_no_constant)
            except ValueError as exc:
                raise CorruptEvent(run_id, r.seq, f"payload is not JSON ({exc})") from None
            out.append(
                StoredEvent(
                    r.run_id, r.seq, r.type, r.version, payload, r.recorded_at, r.prev_hash, r.hash
                )
            )
        return out

    def noncanonical_payload(self, run_id: str) -> int | None:
        """The first seq whose stored payload is not the canonical JSON text of its value: a
        byte changed without changing the value (`e` to `E` in a number, a `\\u001f` escape
        to `\\u001F`) leaves the hash right, yet is not what was written."""
        query = sa.select(EventRow.seq, EventRow.payload).where(EventRow.run_id == run_id)
        with self.engine.connect() as conn:
            for seq, text in conn.execute(query.order_by(EventRow.seq)):
                try:
                    if canonical_json(json.loads(text, parse_constant=_no_constant)) != text:
                        return int(seq)
                except ValueError:  # not JSON at all: read() names it first
                    return int(seq)
        return None

    def _name_undecodable(self, run_id: str, until: int | None) -> None:
        """Raise CorruptEvent for the first event with a text column that is not UTF-8."""
        columns = ("type", "payload", "recorded_at", "prev_hash", "hash")
        raw = ", ".join(f"CAST({c} AS BLOB)" for c in columns)
        query = f"SELECT seq, {raw} FROM events WHERE run_id = :run"
        query += " AND seq <= :until" if until is not None else ""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(query + " ORDER BY seq"), {"run": run_id, "until": until})
            for seq, *values in rows:
                for column, value in zip(columns, values, strict=True):
                    try:
                        bytes(value).decode("utf-8")
                    except UnicodeDecodeError:
                        raise CorruptEvent(run_id, seq, f"{column} is not UTF-8 text") from None

    def append(
        self,
        run_id: str,
        expected_seq: int,
        events: Sequence[Event],
        recorded_at: str | Sequence[str],
        texts: Iterable[str] = (),
        status: StatusView | None = None,
    ) -> list[StoredEvent]:
        """Append in one transaction, iff the run's last seq is still `expected_seq`, with the
        texts (blobs) the events refer to and the run's status view after them."""
        if not events:
            return []
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(skillopt_writer=True)
            try:
                with conn.begin():
                    last_seq, last_hash = _expect_last(conn, run_id, expected_seq)
                    _insert_blobs(conn, {sha256_text(t): t for t in texts})
                    stored = self._insert(conn, run_id, last_seq, last_hash, events, recorded_at)
                    _put_status(conn, run_id, stored[-1].seq, stored[-1].hash, status)
                    return stored
            except sa.exc.IntegrityError:
                raise ConflictError(
                    f"run {run_id}: another process appended seq {expected_seq + 1} first"
                ) from None
            except sa.exc.OperationalError as exc:
                if "locked" in str(exc.orig):
                    raise ConflictError(
                        f"run {run_id}: ledger is locked by another writer"
                    ) from None
                raise

    @staticmethod
    def _insert(
        conn: Connection,
        run_id: str,
        last_seq: int,
        last_hash: str,
        events: Iterable[Event],
        recorded_at: str | Sequence[str],
    ) -> list[StoredEvent]:
        stored: list[StoredEvent] = []
        prev = last_hash
        events = list(events)
        stamps = [recorded_at] * len(events) if isinstance(recorded_at, str) else list(recorded_at)
        if len(stamps) != len(events):
            raise ValueError("one recorded_at per event")
        for offset, (event, stamp) in enumerate(zip(events, stamps, strict=True), start=1):
            seq = last_seq + offset
            payload = event.payload()
            digest = event_hash(run_id, seq, event.TYPE, event.VERSION, payload, prev)
            stored.append(
                StoredEvent(run_id, seq, event.TYPE, event.VERSION, payload, stamp, prev, digest)
            )
            prev = digest
        conn.execute(
            sa.insert(EventRow),
            [
                {
                    "run_id": s.run_id,
                    "seq": s.seq,
                    "type": s.type,
                    "version": s.version,
                    "payload": canonical_json(s.payload),
                    "recorded_at": s.recorded_at,
                    "prev_hash": s.prev_hash,
                    "hash": s.hash,
                }
                for s in stored
            ],
        )
        return stored

    # -- timings -----------------------------------------------------------------------------

    def put_timing(self, run_id: str, seq: int, wall_time_s: float, detail: str = "{}") -> None:
        """A measured wall time of event `seq`'s work: kept next to the event, never hashed."""
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(skillopt_writer=True)
            with conn.begin():
                conn.execute(
                    sa.insert(TimingRow).values(
                        run_id=run_id, seq=seq, wall_time_s=wall_time_s, detail=detail
                    )
                )

    def timings(self, run_id: str) -> dict[int, TimingRow]:
        query = sa.select(TimingRow).where(TimingRow.run_id == run_id)
        with self.engine.connect() as conn:
            return {r.seq: TimingRow(**r._mapping) for r in conn.execute(query).all()}

    # -- status views ------------------------------------------------------------------------

    def status_view(self, run_id: str, conn: Connection | None = None) -> StatusViewRow | None:
        """The run's stored status view; its text read as bytes, so that one changed into
        something not UTF-8 reads as a different text instead of failing the read."""
        sqlite = self.engine.dialect.name == "sqlite"
        view = "CAST(view AS BLOB)" if sqlite else "view"
        query = f"SELECT seq, hash, format, {view} FROM status_views WHERE run_id = :run"
        if conn is None:
            with self.engine.connect() as own:
                return self.status_view(run_id, own)
        row = conn.execute(sa.text(query), {"run": run_id}).first()
        if row is None:
            return None
        text = bytes(row[3]).decode("utf-8", "replace") if sqlite else str(row[3])
        return StatusViewRow(run_id=run_id, seq=row[0], hash=row[1], format=row[2], view=text)

    def current_status(self, run_id: str, format_: int) -> dict[str, Any] | None:
        """The run's stored status view if it describes the run's last event in `format_`
        (read in one snapshot), else None."""
        with self.engine.connect() as conn, conn.begin():
            last = _last_event(conn, run_id)
            row = self.status_view(run_id, conn)
        if row is None or (row.seq, row.hash, row.format) != (*last, format_):
            return None
        try:
            value = json.loads(row.view)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put_status(self, run_id: str, expected_seq: int, status: StatusView) -> None:
        """Write the run's status view as of its last event, iff that is still `expected_seq`."""
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(skillopt_writer=True)
            with conn.begin():
                last_seq, last_hash = _expect_last(conn, run_id, expected_seq)
                _put_status(conn, run_id, last_seq, last_hash, status)

    # -- blobs -------------------------------------------------------------------------------

    def put_blobs(self, texts: Iterable[str]) -> list[str]:
        pairs = {sha256_text(t): t for t in texts}
        if pairs:
            with self.write_lock, self.engine.connect() as conn:
                conn = conn.execution_options(skillopt_writer=True)
                with conn.begin():
                    _insert_blobs(conn, pairs)
        return list(pairs)

    def put_blob(self, text: str) -> str:
        return self.put_blobs([text])[0]

    def check_blobs(self) -> tuple[int, list[str]]:
        """(blobs, keys of those whose bytes do not hash to their key), reading the bytes as
        stored (a text that is not UTF-8 any more is one of them)."""
        bad: list[str] = []
        n = 0
        sqlite = self.engine.dialect.name == "sqlite"  # elsewhere text is always valid UTF-8
        column = "CAST(text AS BLOB)" if sqlite else "text"
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT hash, {column} FROM blobs ORDER BY hash"))
            for key, data in rows:
                n += 1
                raw = bytes(data) if sqlite else str(data).encode("utf-8")
                if hashlib.sha256(raw).hexdigest() != key:
                    bad.append(key)
        return n, bad

    def get_blobs(self, hashes: Iterable[str]) -> dict[str, str]:
        wanted = list(set(hashes))
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                for h, t in conn.execute(
                    sa.select(BlobRow.hash, BlobRow.text).where(BlobRow.hash.in_(chunk))
                ):
                    out[h] = t
        return out

    def find_blobs(self, prefix: str) -> list[str]:
        """Hashes of the blobs starting with `prefix` (at most 5)."""
        with self.engine.connect() as conn:
            query = sa.select(BlobRow.hash).where(BlobRow.hash.startswith(prefix.lower())).limit(5)
            return list(conn.execute(query).scalars())

    def get_blob(self, hash_: str) -> str:
        found = self.get_blobs([hash_])
        if hash_ not in found:
            raise LedgerError(f"blob {hash_[:12]} is missing from {self.location}")
        return found[hash_]


class Journal:
    """The LLM call journal of a ledger (table llm_calls)."""

    def __init__(self, ledger: Ledger) -> None:
        self.engine = ledger.engine
        self.write_lock = ledger.write_lock

    def answer(self, call_key: str) -> CallRow | None:
        """The completed call with this key, if one was recorded."""
        query = sa.select(CallRow).where(CallRow.call_key == call_key, CallRow.status == "ok")
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return CallRow(**row._mapping) if row else None

    def record(self, row: CallRow, texts: Iterable[str] = ()) -> None:
        """Commit one call (an answer, or a failed attempt) before the caller goes on, with
        the texts it refers to (request, reply) in the same transaction."""
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(skillopt_writer=True)
            with conn.begin():
                _insert_blobs(conn, {sha256_text(t): t for t in texts})
                if row.status == "failed":  # failed attempts of one key are numbered
                    n = conn.execute(
                        sa.select(sa.func.count()).where(CallRow.call_key == row.call_key)
                    ).scalar_one()
                    row.id = f"{row.id}-f{n}"
                elif conn.execute(sa.select(CallRow.id).where(CallRow.id == row.id)).first():
                    return  # another writer of this run answered the same call first: keep theirs
                conn.execute(sa.insert(CallRow), [row.model_dump()])  # a cached statement

    def calls(self, run_id: str, stage: str | None = None) -> list[CallRow]:
        query = sa.select(CallRow).where(CallRow.run_id == run_id)
        if stage is not None:
            query = query.where(CallRow.stage == stage)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(CallRow.recorded_at, CallRow.id)).all()
        return [CallRow(**r._mapping) for r in rows]

    def find(self, prefix: str) -> list[CallRow]:
        query = sa.select(CallRow).where(CallRow.id.startswith(prefix)).limit(5)
        with self.engine.connect() as conn:
            return [CallRow(**r._mapping) for r in conn.execute(query).all()]


def _last_event(conn: Connection, run_id: str) -> tuple[int, str]:
    """(seq, hash) of the run's last event; (0, the genesis hash) before its first."""
    last = conn.execute(
        sa.select(EventRow.seq, EventRow.hash)
        .where(EventRow.run_id == run_id)
        .order_by(EventRow.seq.desc())
        .limit(1)
    ).first()
    return (last[0], last[1]) if last else (0, GENESIS_HASH)


def _expect_last(conn: Connection, run_id: str, expected_seq: int) -> tuple[int, str]:
    """The run's last event, which must still be `expected_seq` (optimistic concurrency)."""
    last_seq, last_hash = _last_event(conn, run_id)
    if last_seq != expected_seq:
        raise ConflictError(
            f"run {run_id} moved on: expected last seq {expected_seq}, "
            f"found {last_seq} (another process is writing this run)"
        )
    return last_seq, last_hash


_UPDATE_STATUS = sa.text(
    "UPDATE status_views SET seq = :seq, hash = :hash, format = :format, view = :view "
    "WHERE run_id = :run_id"
)
_INSERT_STATUS = sa.text(
    "INSERT INTO status_views (run_id, seq, hash, format, view) "
    "VALUES (:run_id, :seq, :hash, :format, :view)"
)


def _put_status(
    conn: Connection, run_id: str, seq: int, hash_: str, status: StatusView | None
) -> None:
    """Replace the run's status view with `status`, as of event `seq`. Without one the old
    view stays, describing an earlier event, and status no longer reads it."""
    if status is None:
        return
    row = {
        "run_id": run_id,
        "seq": seq,
        "hash": hash_,
        "format": status.format,
        "view": status.json,
    }
    if conn.execute(_UPDATE_STATUS, row).rowcount == 0:  # the run's first view
        conn.execute(_INSERT_STATUS, row)


def _insert_blobs(conn: Connection, pairs: dict[str, str]) -> None:
    """Store the texts not stored yet (content-addressed: a key already there is that text)."""
    if not pairs:
        return
    have = set(conn.execute(sa.select(BlobRow.hash).where(BlobRow.hash.in_(list(pairs)))).scalars())
    rows = [{"hash": h, "text": t} for h, t in pairs.items() if h not in have]
    if rows:
        conn.execute(sa.insert(BlobRow), rows)


def check_chain(events: Sequence[StoredEvent]) -> tuple[int, str] | None:
    """The first (seq, problem) where the chain breaks, or None."""
    prev = GENESIS_HASH
    for expected, e in enumerate(events, start=1):
        if e.seq != expected:
            return e.seq, f"gap: expected seq {expected}"
        if e.prev_hash != prev:
            return e.seq, "prev_hash does not match the previous event's hash"
        if event_hash(e.run_id, e.seq, e.type, e.version, e.payload, e.prev_hash) != e.hash:
            return e.seq, "hash does not match the event's content (tampered?)"
        prev = e.hash
    return None
