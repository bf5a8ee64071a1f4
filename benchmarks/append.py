"""Append speed: events per second written through the ledger API (hash chain computed,
optimistic concurrency checked, every transaction committed durably: SQLite WAL with
synchronous=FULL), one transaction per event (how per-unit events such as rollouts are
written) and one per stage batch (consecutive events of a type). The events are those of a
synthetic run built from a real one (benchmarks/synthetic.py). Prints medians and the
machine; no floor (issue 7 asks for the figure), so it exits 0 unless an append fails.

Run: python benchmarks/append.py [--events 20000] [--single 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from synthetic import ROOT, machine_line, stage_batches, synthesize, template_run

sys.path.insert(0, str(ROOT))

from ledger.store import Ledger  # noqa: E402
from machine.events import Event, RunCreated  # noqa: E402

STAMP = "2025-01-01T00:00:00+00:00"


def append_all(db: Path, events: Sequence[Event], batches: list[list[Event]]) -> float:
    """Seconds to append `batches` (after the run.created event) to a fresh ledger."""
    ledger = Ledger.open(str(db), create=True)
    try:
        first = events[0]
        assert isinstance(first, RunCreated)
        ledger.create_run("rbench", "bench", first.config, STAMP, first)
        with ledger.engine.connect() as conn:
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert (sync, mode) == (2, "wal"), (sync, mode)  # FULL: each commit is on disk
        seq = 1
        start = time.perf_counter()
        for batch in batches:
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
        for label, batches in modes.items():
            n = sum(len(b) for b in batches)
            times = []
            for i in range(args.repeat):
                db = Path(tmp) / f"append-{len(times)}-{i}.db"
                times.append(append_all(db, events, batches))
                db.unlink()
            median = statistics.median(times)
            print(
                f"{label:<32}: {n / median:>8,.0f} events/s ({n} events in {len(batches)} "
                f"transactions, median {median:.2f} s of {args.repeat})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
