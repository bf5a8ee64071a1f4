"""The database under a ledger: its URL, opening and upgrading the schema (alembic), SQLite's
pragmas and locking, a refused write as one line, and write transactions.

Every concern of the ledger (runs, events, blobs, status views, timings) is a mixin over
`Database` in a module of its own; ledger/ledger.py assembles them into `Ledger`.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from skillopt.ledger.errors import LedgerError, LedgerWriteError
from skillopt.ledger.schema_files import MIGRATIONS, head_of_files
from skillopt.ledger.sqlite_files import read_only_access, writable
from skillopt.ledger.urls import masked_url, scrub

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig


def database_url(db: str) -> str:
    """A path becomes a SQLite URL; anything with '://' is taken as an SQLAlchemy URL."""
    return db if "://" in db else f"sqlite:///{db}"


def insert_new(conn: Connection, table: Any, key: list[str]) -> Any:
    """INSERT that skips a row whose `key` is stored already (ON CONFLICT DO NOTHING), also
    when another transaction stores it meanwhile: for content-addressed rows, which writers of
    different runs share. None on a database without it (the caller checks first)."""
    return _insert_new(conn.dialect.name, table, tuple(key))


@functools.cache
def _insert_new(dialect: str, table: Any, key: tuple[str, ...]) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        return None
    return insert(table).on_conflict_do_nothing(index_elements=list(key))


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


# What a database server says when it cannot take a write or lost the connection (SQLSTATE
# classes and codes, PostgreSQL's) -> what the user reads.
_SERVER_REFUSED = {
    "08": "lost its connection to the database server",
    "57P": "lost its connection: the database server is shutting down or restarting",
    "53": "cannot be written: the database server is out of resources (disk, memory or "
    "connections)",
    "25006": "is read-only (a read-only transaction, or a standby server)",
    "42501": "cannot be written: the database user lacks a privilege",
}


def _server_refusals(ledger: Database) -> Any:
    """A handle_error listener for a database server (PostgreSQL): a write it refuses, or a
    connection it lost, becomes LedgerWriteError, one line naming the ledger and the cause.
    Opening a ledger names its own errors (`cannot open ledger ...`)."""

    def translate(context: Any) -> None:
        if not ledger.opened:
            return
        error = context.original_exception
        state = str(getattr(error, "sqlstate", None) or getattr(error, "pgcode", None) or "")
        why = next((w for code, w in _SERVER_REFUSED.items() if state.startswith(code)), None)
        if why is None and context.is_disconnect:
            why = _SERVER_REFUSED["08"]
        if why is not None:
            raise LedgerWriteError(
                f"ledger {ledger.location} {why} ({ledger._detail(error)}); "
                "what was not committed is not recorded"
            ) from None

    return translate


_MIGRATING = 0x5C111097  # PostgreSQL's advisory lock key of a schema upgrade


def _begin(conn: Connection) -> None:
    writer = conn.get_execution_options().get("skillopt_writer", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if writer else "BEGIN")


class Database:
    """An open ledger database: its engine, where it is (for messages) and the process's
    write lock."""

    def __init__(self, engine: Engine, location: str) -> None:
        self.engine = engine
        self._given = location  # as given, password and all: for scrub() only, never shown
        self.location = masked_url(location)  # how messages name it: a URL's password masked
        self.opened = False  # until open() has checked the schema
        # A SQLite ledger this process cannot write (file, directory or mount) is opened
        # read-only: read commands work, a write is refused up front (see writing()).
        self.read_only = False
        self.read_only_note: str | None = None  # what a read-only open cannot see, if any
        # The process's writers (rollout threads, the runner) take turns here; between them,
        # SQLite's busy handler would sleep in steps of up to 100 ms. Other processes still
        # wait on SQLite's own lock (busy timeout).
        self.write_lock = threading.RLock()

    @classmethod
    def open(cls, db: str, *, create: bool = False) -> Self:
        url = database_url(db)
        shown = masked_url(db)
        read_only, read_only_note = False, None
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.parent.is_dir():
                raise LedgerError(f"--db {shown}: directory {path.parent} does not exist")
            if not create and not path.exists():
                raise LedgerError(f"no ledger at {shown} (create one with `skillopt init`)")
            if not create and "?" not in url and path.is_file() and not writable(path):
                access = read_only_access(path, shown)
                url, read_only, read_only_note = (
                    f"sqlite:///{access.uri}&uri=true",
                    True,
                    access.note,
                )
        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError) as exc:
            why = scrub(str(exc), db)  # SQLAlchemy may quote the whole URL
            raise LedgerError(f"--db {shown}: not a usable database URL ({why})") from None
        except ImportError as exc:  # the dialect is known, its driver is not installed
            hint = ""
            if url.startswith("postgres"):
                hint = (
                    " (PostgreSQL: pip install 'skillopt[postgres]', a postgresql+psycopg:// URL)"
                )
            raise LedgerError(
                f"--db {shown}: the database driver is not installed: {exc}{hint}"
            ) from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
            sa.event.listen(engine, "begin", _begin)
            sa.event.listen(engine, "handle_error", _refused_writes(shown))
        ledger = cls(engine, db)
        ledger.read_only = read_only
        ledger.read_only_note = read_only_note
        if engine.dialect.name != "sqlite":
            sa.event.listen(engine, "handle_error", _server_refusals(ledger))
        try:
            ledger._upgrade_or_refuse(create)
        except BaseException:
            engine.dispose()  # no connection left open to a ledger that was refused
            raise
        ledger.opened = True
        return ledger

    def close(self) -> None:
        """Release connections; SQLite folds the WAL back into the file on the last close."""
        self.engine.dispose()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction. This process's writers take turns (write_lock); on SQLite
        it takes the database's write lock as it begins (BEGIN IMMEDIATE, see _begin), so a
        writer of another process is waited for there (busy timeout), not found midway."""
        if self.read_only:
            raise LedgerWriteError(
                f"ledger {self.location} is read-only here (its file, directory or mount "
                "cannot be written); nothing of this write was recorded"
            )
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(skillopt_writer=True)
            with conn.begin():
                yield conn

    def schema_revision(self) -> str | None:
        try:
            conn = self.engine.connect()
        except sa.exc.DBAPIError as exc:
            if self.engine.dialect.name == "sqlite":  # a file that is not a database
                raise LedgerError(
                    f"{self.location} is not a skillopt ledger ({self._detail(exc)})"
                ) from None
            # no server there, a wrong password, no such database...
            raise LedgerError(f"cannot open ledger {self.location}: {self._detail(exc)}") from None
        try:
            with conn:
                tables = set(sa.inspect(conn).get_table_names())
                if "alembic_version" not in tables:
                    if tables:
                        raise LedgerError(
                            f"{self.location} is not a skillopt ledger "
                            f"(it has tables {', '.join(sorted(tables))} but no schema version)"
                        )
                    return None
                revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                if revision is None and tables - {"alembic_version"}:
                    raise LedgerError(
                        f"{self.location} has skillopt's tables but no schema revision (its "
                        "alembic_version table is empty): it was damaged; restore it from a "
                        "backup"
                    )
                return revision
        except sa.exc.DatabaseError as exc:
            raise LedgerError(
                f"{self.location} is not a skillopt ledger ({self._detail(exc)})"
            ) from None

    def _detail(self, error: BaseException) -> str:
        """The driver's message (of a DBAPIError's original) in one line, without the URL's
        password."""
        error = getattr(error, "orig", None) or error
        lines = [" ".join(line.split()) for line in str(error).splitlines() if line.strip()]
        return scrub("; ".join(lines) or type(error).__name__, self._given)

    def _upgrade_or_refuse(self, create: bool) -> None:
        revision = self.schema_revision()
        if revision is None and not create:  # never write a schema into a file on a read
            raise LedgerError(
                f"{self.location} is empty, not a skillopt ledger yet (`skillopt init` creates one)"
            )
        if revision is not None and revision == head_of_files():
            return  # up to date
        if self.read_only and revision is not None:
            raise LedgerError(
                f"{self.location} has schema revision {revision}, older than this skillopt's "
                f"{head_revision()}, and is read-only here: upgrade it where it is writable "
                f"(`skillopt db upgrade --db {self.location}`), or read it with the skillopt "
                "that wrote it"
            )
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
            try:
                self.upgrade()
            except sa.exc.DBAPIError as exc:
                what = (
                    f"create the schema of ledger {self.location}"
                    if revision is None
                    else f"upgrade ledger {self.location} from schema revision {revision}"
                )
                hint = ""
                if revision is not None and "already exists" in str(exc):
                    hint = (
                        f"; its tables are not those of revision {revision} (a damaged or "
                        "hand-edited ledger): restore it from a backup"
                    )
                raise LedgerError(f"cannot {what}: {self._detail(exc)}{hint}") from None

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
        # alembic runs its own transaction on the writer connection: not `writing()`'s.
        with self.write_lock, self.engine.connect() as conn:
            conn = conn.execution_options(skillopt_writer=True)
            if conn.dialect.name == "postgresql":
                # Processes opening a new database at once migrate one after the other: the
                # later ones find it at the head (the lock is held until the commit below).
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATING})
            cfg.attributes["connection"] = conn
            alembic_command.upgrade(cfg, revision)
            if conn.in_transaction():
                conn.commit()
