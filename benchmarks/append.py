"""Append speed: events per second written through the ledger API (hash chain computed,
optimistic concurrency checked, every transaction committed durably: SQLite WAL with
synchronous=FULL), one transaction per event (how per-unit events such as rollouts are
written) and one per stage batch (consecutive events of a type). The events are those of a
synthetic run built from a real one (benchmarks/synthetic.py). Each mode runs twice: through
`Ledger.append` alone, and as the runner appends (skillopt.commands.runner.record: fold the events, then
append them with the run's status view in the same transaction). Prints medians and the
machine; no floor (issue 7 asks for the figure), so it exits 0 unless an append fails.

Run: python benchmarks/append.py [--events 20000] [--single 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from synthetic import machine_line, stage_batches, synthesize, template_run

from skillopt.commands.runner import record, status_of
from skillopt.ledger.ledger import Ledger
from skillopt.machine.core.events import Event, RunCreated
from skillopt.machine.loop.reducer import reduce

STAMP = "2025-01-01T00:00:00+00:00"


def append_all(
    db: Path, events: Sequence[Event], batches: list[list[Event]], as_runner: bool
) -> float:
    """Seconds to append `batches` (after the run.created event) to a fresh ledger."""
    ledger = Ledger.open(str(db), create=True)
    try:
        first = events[0]
        assert isinstance(first, RunCreated)
        state = reduce([first])
        ledger.create_run("rbench", "bench", first.config, STAMP, first, status=status_of(state))
        with ledger.engine.connect() as conn:
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert (sync, mode) == (2, "wal"), (sync, mode)  # FULL: each commit is on disk
        seq = 1
        start = time.perf_counter()
        for batch in batches:
            if as_runner:
                state = record(ledger, "rbench", state, batch, STAMP)[1]
            else:
                ledger.append("rbench", seq, batch, STAMP)
            seq += len(batch)
        return time.perf_counter() - start
    finally:
        ledger.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events, batched per stage")
    parser.add_argument("--single", type=int, default=2_000, help="events, one per transaction")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        events, _, _ = synthesize(template_run(Path(tmp)), max(args.events, args.single))
        body = events[1:]
        modes = {
            "one transaction per event": [[e] for e in body[: args.single]],
            "one transaction per stage batch": list(stage_batches(body[: args.events])),
        }
        for (label, batches), as_runner in itertools.product(modes.items(), (False, True)):
            n = sum(len(b) for b in batches)
            times = []
            for i in range(args.repeat):
                db = Path(tmp) / f"append-{i}.db"
                times.append(append_all(db, events, batches, as_runner))
                db.unlink()
            median = statistics.median(times)
            how = "as the runner (fold + status view)" if as_runner else "Ledger.append"
            print(
                f"{label:<32} {how:<35}: {n / median:>8,.0f} events/s ({n} events in "
                f"{len(batches)} transactions, median {median:.2f} s of {args.repeat})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
