"""A run's stored status view, read with the sqlite3 module alone.

`skillopt status` is what people run while a run trains; loading SQLAlchemy, pydantic and the
core to fold thousands of events would take seconds. The writer stores the status view with
every append (skillopt.ledger.views.StatusView); this module answers from it when, and only when, it
certainly describes the run's last event: a SQLite ledger at the schema head, the run found
as `Ledger.find_run` finds it, a view of the expected format keyed by the last event's seq and
hash, all read in one snapshot. Anything else returns None and the caller folds the run,
which also names whatever is wrong."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from skillopt.ledger.schema_files import head_of_files
from skillopt.ledger.sqlite_files import read_only_access, sqlite_path, writable

_LAST_EVENT_AND_VIEW = """
SELECT v.seq, v.hash, v.format, v.view, e.seq, e.hash
FROM status_views AS v,
     (SELECT seq, hash FROM events WHERE run_id = :run ORDER BY seq DESC LIMIT 1) AS e
WHERE v.run_id = :run
"""


def stored_status(db: str, ref: str | None, format_: int) -> dict[str, Any] | None:
    """The status view of run `ref` (None: the most recent training run) if one is stored for
    its last event in format `format_`; None when that is not certain."""
    path = sqlite_path(db)
    if path is None or not path.is_file():
        return None
    try:
        if writable(path):  # mode=rw: never create a file
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True)
        else:  # a read-only file, directory or mount
            access = read_only_access(path, str(path))
            if access.note is not None:  # not all of it is readable: the full path says so
                return None
            conn = sqlite3.connect(access.uri, uri=True)
    except (sqlite3.Error, OSError):
        return None
    try:
        conn.isolation_level = None
        conn.execute("BEGIN")  # one read snapshot for every query below
        return _read(conn, ref, format_)
    except (sqlite3.Error, ValueError):  # not a ledger, an old schema, a view not JSON
        return None
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, ref: str | None, format_: int) -> dict[str, Any] | None:
    found_revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    if found_revision is None or found_revision[0] != head_of_files():  # the full path says why
        return None
    runs = conn.execute("SELECT id, name, kind FROM runs ORDER BY created_at, name").fetchall()
    if ref is None:
        found = [r for r in runs if r[2] == "train"][-1:]
    else:
        found = [r for r in runs if ref in (r[0], r[1])][:1]
    if not found or found[0][2] != "train":
        return None
    row = conn.execute(_LAST_EVENT_AND_VIEW, {"run": found[0][0]}).fetchone()
    if row is None:
        return None
    seq, hash_, stored_format, view, last_seq, last_hash = row
    if (seq, hash_, stored_format) != (last_seq, last_hash, format_):
        return None
    value = json.loads(view)
    return value if isinstance(value, dict) else None
