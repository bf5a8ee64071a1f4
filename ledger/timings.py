"""Timings: measured wall times of an event's work (seconds), kept next to the event in table
timings and outside the hash chain, so that the events of two identical runs are identical."""

from __future__ import annotations

import sqlalchemy as sa

from skillopt.ledger.database import Database
from skillopt.ledger.tables import TimingRow


class Timings(Database):
    def put_timing(self, run_id: str, seq: int, wall_time_s: float, detail: str = "{}") -> None:
        """A measured wall time of event `seq`'s work: kept next to the event, never hashed."""
        with self.writing() as conn:
            conn.execute(
                sa.insert(TimingRow).values(
                    run_id=run_id, seq=seq, wall_time_s=wall_time_s, detail=detail
                )
            )

    def timings(self, run_id: str) -> dict[int, TimingRow]:
        query = sa.select(TimingRow).where(TimingRow.run_id == run_id)
        with self.engine.connect() as conn:
            return {r.seq: TimingRow(**r._mapping) for r in conn.execute(query).all()}
