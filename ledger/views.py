"""Status views: what `skillopt status` shows of a run, stored beside its events (table
status_views) and keyed by the seq and hash of the last event it describes. A cache outside
the hash chain: `skillopt verify` checks it against the events, and ledger/stored_status.py
reads it without SQLAlchemy. Writing one is part of an append (ledger/events.py), which
knows the run's last event."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from skillopt.ledger.database import Database
from skillopt.ledger.tables import StatusViewRow


@dataclass(frozen=True)
class StatusView:
    """What `skillopt status` shows of a run after the events it is appended with: its format
    (the view's shape, so that one of another skillopt is never shown) and its JSON text."""

    format: int
    json: str


_UPDATE_STATUS = sa.text(
    "UPDATE status_views SET seq = :seq, hash = :hash, format = :format, view = :view "
    "WHERE run_id = :run_id"
)
_INSERT_STATUS = sa.text(
    "INSERT INTO status_views (run_id, seq, hash, format, view) "
    "VALUES (:run_id, :seq, :hash, :format, :view)"
)


def write_status(
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


def read_status(conn: Connection, run_id: str) -> StatusViewRow | None:
    """The run's stored status view; its text read as bytes, so that one changed into
    something not UTF-8 reads as a different text instead of failing the read."""
    sqlite = conn.dialect.name == "sqlite"
    view = "CAST(view AS BLOB)" if sqlite else "view"
    query = f"SELECT seq, hash, format, {view} FROM status_views WHERE run_id = :run"
    row = conn.execute(sa.text(query), {"run": run_id}).first()
    if row is None:
        return None
    text = bytes(row[3]).decode("utf-8", "replace") if sqlite else str(row[3])
    return StatusViewRow(run_id=run_id, seq=row[0], hash=row[1], format=row[2], view=text)


class StatusViews(Database):
    def status_view(self, run_id: str) -> StatusViewRow | None:
        """The run's stored status view, whatever event it describes (see read_status)."""
        with self.engine.connect() as conn:
            return read_status(conn, run_id)
