"""Events: a run's append-only history. Events of a run are gapless from seq 1 and chained by
hash; triggers reject UPDATE and DELETE. An append names the seq it expects to follow
(optimistic concurrency) and writes, in its transaction, the texts its events refer to and
the run's status view after them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from skillopt.ledger.blobs import insert_blobs
from skillopt.ledger.database import Database
from skillopt.ledger.errors import ConflictError, CorruptEvent
from skillopt.ledger.tables import EventRow
from skillopt.ledger.views import StatusView, read_status, write_status
from skillopt.machine.core.canonical import GENESIS_HASH, canonical_json, event_hash, sha256_text
from skillopt.machine.core.events import Event, parse_event


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


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON, and never written (canonical_json refuses them)."""
    raise ValueError(f"{name} is not a JSON value")


def last_event(conn: Connection, run_id: str) -> tuple[int, str]:
    """(seq, hash) of the run's last event; (0, the genesis hash) before its first."""
    last = conn.execute(
        sa.select(EventRow.seq, EventRow.hash)
        .where(EventRow.run_id == run_id)
        .order_by(EventRow.seq.desc())
        .limit(1)
    ).first()
    return (last[0], last[1]) if last else (0, GENESIS_HASH)


def expect_last(conn: Connection, run_id: str, expected_seq: int) -> tuple[int, str]:
    """The run's last event, which must still be `expected_seq` (optimistic concurrency)."""
    last_seq, last_hash = last_event(conn, run_id)
    if last_seq != expected_seq:
        raise ConflictError(
            f"run {run_id} moved on: expected last seq {expected_seq}, "
            f"found {last_seq} (another process is writing this run)"
        )
    return last_seq, last_hash


def insert_events(
    conn: Connection,
    run_id: str,
    last_seq: int,
    last_hash: str,
    events: Iterable[Event],
    recorded_at: str | Sequence[str],
) -> list[StoredEvent]:
    """Chain `events` after (last_seq, last_hash) and insert them; one stamp for all, or one
    per event."""
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


class Events(Database):
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

    def stamps(self, run_id: str, types: Sequence[str]) -> list[str]:
        """The recorded times of the run's events of these types, in seq order."""
        query = sa.text(
            "SELECT recorded_at FROM events WHERE run_id = :run AND type IN :types ORDER BY seq"
        ).bindparams(sa.bindparam("types", expanding=True))
        with self.engine.connect() as conn:
            return list(conn.execute(query, {"run": run_id, "types": list(types)}).scalars())

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
        try:
            with self.writing() as conn:
                last_seq, last_hash = expect_last(conn, run_id, expected_seq)
                insert_blobs(conn, {sha256_text(t): t for t in texts})
                stored = insert_events(conn, run_id, last_seq, last_hash, events, recorded_at)
                write_status(conn, run_id, stored[-1].seq, stored[-1].hash, status)
                return stored
        except sa.exc.IntegrityError:
            # A conflict is this run's last event having moved on: never a row of another run
            # or a shared one (blobs skip what is stored). Anything else is no conflict.
            with self.engine.connect() as conn:
                moved = last_event(conn, run_id)[0] != expected_seq
            if not moved:
                raise
            raise ConflictError(
                f"run {run_id}: another process appended seq {expected_seq + 1} first"
            ) from None
        except sa.exc.OperationalError as exc:
            if "locked" in str(exc.orig):
                raise ConflictError(f"run {run_id}: ledger is locked by another writer") from None
            raise

    # A status view is only ever shown with the last event it describes: reading or writing
    # one alone checks the run's last event in the same transaction.

    def current_status(self, run_id: str, format_: int) -> dict[str, Any] | None:
        """The run's stored status view if it describes the run's last event in `format_`
        (read in one snapshot), else None."""
        with self.engine.connect() as conn, conn.begin():
            last = last_event(conn, run_id)
            row = read_status(conn, run_id)
        if row is None or (row.seq, row.hash, row.format) != (*last, format_):
            return None
        try:
            value = json.loads(row.view)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def put_status(self, run_id: str, expected_seq: int, status: StatusView) -> None:
        """Write the run's status view as of its last event, iff that is still `expected_seq`."""
        with self.writing() as conn:
            last_seq, last_hash = expect_last(conn, run_id, expected_seq)
            write_status(conn, run_id, last_seq, last_hash, status)
