"""The LLM call journal (table llm_calls): every model call, answered or failed, committed
before its caller goes on, so that a resumed run pays for no answered call twice
(commands/journal.py is the model wrapper that writes it)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import sqlalchemy as sa

from skillopt.ledger.blobs import insert_blobs
from skillopt.ledger.database import Database, insert_new
from skillopt.ledger.tables import BlobRow, CallRow
from skillopt.machine.core.canonical import canonical_json, sha256_text


def call_digest(row: CallRow) -> str:
    """The digest of a journal row: sha256 of its fields but `digest`, in canonical JSON.
    Written with the row; `skillopt verify` recomputes it (check_digests)."""
    fields = row.model_dump()
    fields.pop("digest")
    return sha256_text(canonical_json(fields))


def _digested(row: CallRow, call_id: str) -> dict[str, object]:
    named = row.model_copy(update={"id": call_id, "digest": None})
    return named.model_dump() | {"digest": call_digest(named)}


_ATTEMPT = re.compile(r"^(?P<base>.+)-f(?P<n>\d+)$")


def check_digests(rows: Iterable[CallRow]) -> str | None:
    """The first journal row that is not as written, or None: a digest that is not the row's,
    a row without one among rows with one (only calls journaled before revision 0006 lack
    it, and those come first), or a numbered failed attempt missing between two others.
    Deleting a call's last failed attempt, or a row rewritten with a recomputed digest, is
    not seen: the journal is not chained (events name the calls they used; verify checks
    those against the events)."""
    rows = sorted(rows, key=lambda r: (r.run_id, r.recorded_at, r.id))
    first_digested: dict[str, str] = {}
    attempts: dict[str, set[int]] = {}
    for row in rows:
        if row.digest is not None:
            if row.digest != call_digest(row):
                return f"call {row.id}: the journal row is not the row written (tampered?)"
            first_digested.setdefault(row.run_id, row.recorded_at)
        elif row.recorded_at > first_digested.get(row.run_id, row.recorded_at):
            return f"call {row.id}: the journal row has no digest, unlike the calls before it"
        if (m := _ATTEMPT.match(row.id)) is not None:
            attempts.setdefault(m["base"], set()).add(int(m["n"]))
    for base, numbers in sorted(attempts.items()):
        if (gap := min(set(range(max(numbers) + 1)) - numbers, default=None)) is not None:
            return f"call {base}-f{gap}: a failed attempt is missing from the call journal"
    return None


class Journal:
    """The LLM call journal of a ledger (table llm_calls)."""

    def __init__(self, ledger: Database) -> None:
        self.ledger = ledger
        self.engine = ledger.engine

    def answer(self, call_key: str) -> CallRow | None:
        """The completed call with this key, if one was recorded."""
        query = sa.select(CallRow).where(CallRow.call_key == call_key, CallRow.status == "ok")
        with self.engine.connect() as conn:
            row = conn.execute(query.limit(1)).first()
        return CallRow(**row._mapping) if row else None

    def record(self, row: CallRow, texts: Iterable[str] = ()) -> None:
        """Commit one call (an answer, or a failed attempt) before the caller goes on, with
        the texts it refers to (request, reply) in the same transaction."""
        with self.ledger.writing() as conn:
            insert_blobs(conn, {sha256_text(t): t for t in texts})
            new = insert_new(conn, CallRow, ["id"])  # skips a row whose id is stored
            if row.status == "failed":  # failed attempts of one key are numbered
                n = conn.execute(
                    sa.select(sa.func.count()).where(CallRow.call_key == row.call_key)
                ).scalar_one()
                base = row.id
                if new is None or not conn.dialect.insert_returning:
                    row.id = f"{base}-f{n}"
                    conn.execute(sa.insert(CallRow), [_digested(row, row.id)])
                    return
                # Another writer of this run may have numbered an attempt n meanwhile: the
                # next free number then (a skipped row returns no id).
                numbered = new.returning(CallRow.id)
                while conn.execute(numbered, _digested(row, f"{base}-f{n}")).first() is None:
                    n += 1
                row.id = f"{base}-f{n}"
            elif new is not None:  # another writer of this run answered this call first: kept
                conn.execute(new, _digested(row, row.id))
            elif not conn.execute(sa.select(CallRow.id).where(CallRow.id == row.id)).first():
                conn.execute(sa.insert(CallRow), [_digested(row, row.id)])

    def calls(self, run_id: str, stage: str | None = None) -> list[CallRow]:
        query = sa.select(CallRow).where(CallRow.run_id == run_id)
        if stage is not None:
            query = query.where(CallRow.stage == stage)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        # by code point, as SQLite sorts text, whatever a server's collation says
        return sorted((CallRow(**r._mapping) for r in rows), key=lambda c: (c.recorded_at, c.id))

    def all_rows(self) -> list[CallRow]:
        """Every journaled call of the ledger (verify reads them against the events)."""
        with self.engine.connect() as conn:
            return [CallRow(**r._mapping) for r in conn.execute(sa.select(CallRow)).all()]

    def missing_blobs(self) -> list[str]:
        """Ids of calls whose request or reply text is not among the stored texts."""
        found: list[str] = []
        with self.engine.connect() as conn:
            for column in (CallRow.request_blob, CallRow.response_blob):
                query = (
                    sa.select(CallRow.id)
                    .outerjoin(BlobRow, BlobRow.hash == column)
                    .where(column.is_not(None), BlobRow.hash.is_(None))
                )
                found += [r[0] for r in conn.execute(query).all()]
        return sorted(found)

    def find(self, prefix: str) -> list[CallRow]:
        query = sa.select(CallRow).where(CallRow.id.startswith(prefix)).limit(5)
        with self.engine.connect() as conn:
            return [CallRow(**r._mapping) for r in conn.execute(query).all()]
