"""Runs: the rows of table runs (name, id, kind, the config snapshot) and creating a run with
its first event."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from skillopt.ledger.database import Database
from skillopt.ledger.errors import LedgerError
from skillopt.ledger.events import StoredEvent, insert_events
from skillopt.ledger.tables import RunRow
from skillopt.ledger.views import StatusView, write_status
from skillopt.machine.core.canonical import GENESIS_HASH, canonical_json
from skillopt.machine.core.events import Event


class Runs(Database):
    def runs(self) -> list[RunRow]:
        with self.engine.connect() as conn:
            rows = [RunRow(**row._mapping) for row in conn.execute(sa.select(RunRow))]
        # Sorted here, by code point as SQLite sorts text: a server's collation (PostgreSQL's
        # en_US...) may order names otherwise, and the most recent run must be the same one.
        return sorted(rows, key=lambda r: (r.created_at, r.name))

    def orphans(self) -> list[tuple[str, str]]:
        """(table, run id) of rows that name a run the runs table does not have: a run's row
        is written with its first event, in one transaction, so one never goes alone."""
        found: list[tuple[str, str]] = []
        with self.engine.connect() as conn:
            for table in ("events", "llm_calls", "status_views"):
                query = (
                    f"SELECT DISTINCT run_id FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)"
                )
                found += [(table, r[0]) for r in conn.execute(sa.text(query))]
        return sorted(found)

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
        """The run's row, its first event and its status view, in one transaction."""
        taken = LedgerError(f"a run named {name!r} already exists; pick another --name")
        try:
            with self.writing() as conn:
                if conn.execute(
                    sa.select(RunRow.id).where(sa.or_(RunRow.name == name, RunRow.id == run_id))
                ).first():
                    raise taken
                row = {"id": run_id, "name": name, "created_at": created_at}
                if kind != "train":  # the column's default; left out, a pre-0003 schema works too
                    row["kind"] = kind
                conn.execute(sa.insert(RunRow).values(**row, config=canonical_json(config)))
                stored = insert_events(conn, run_id, 0, GENESIS_HASH, [first], created_at)[0]
                write_status(conn, run_id, stored.seq, stored.hash, status)
                return stored
        except sa.exc.IntegrityError:  # created by another process meanwhile (PostgreSQL)
            if any(r.name == name or r.id == run_id for r in self.runs()):
                raise taken from None
            raise
