"""The seeded tamper campaign's mutations, shared by tests/test_faults_tamper.py (a small
count, in CI) and benchmarks/tamper.py (a large one, with figures per kind)."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

# The seeded campaign over every table: byte flips, edited numbers and deleted rows in the
# call journal, the blobs, the events, the status views and the runs table. (A bench's
# measured wall times, table timings, are outside the chain by design: measurements.)
CAMPAIGN = int(os.environ.get("SKILLOPT_TAMPER_N", "120"))  # benchmarks/tamper.py runs more
TRIGGERS = ("events_no_update", "events_no_delete", "blobs_no_update", "blobs_no_delete")
# Undetectable by design, and harmless: what no decision, resume or report reads as a fact.
BY_DESIGN = {
    "status_views delete": "a status view is a cache: without it `status` folds the events",
}


def mutate(db: Path, rng: random.Random) -> str:
    """One seeded mutation of a copied ledger; returns what it did ('TABLE ACTION ...')."""
    table, action = rng.choice(
        [
            ("llm_calls", "flip"),
            ("llm_calls", "number"),
            ("llm_calls", "delete"),
            ("blobs", "delete"),
            ("events", "delete"),
            ("status_views", "delete"),
            ("runs", "flip"),
        ]
    )
    with sqlite3.connect(db) as conn:
        for trigger in TRIGGERS:
            conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        (rowid,) = conn.execute(
            f"SELECT rowid FROM {table} ORDER BY rowid LIMIT 1 OFFSET ?", (rng.randrange(n),)
        ).fetchone()
        if action == "delete":
            conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
            return f"{table} delete row {rowid}"
        if action == "edit":
            conn.execute(
                "UPDATE timings SET wall_time_s = wall_time_s + 1 WHERE rowid = ?", (rowid,)
            )
            return f"{table} edit row {rowid}"
        columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        numbers = {"step", "call_index", "tokens_in", "tokens_out", "cache_read", "cache_write",
                   "latency_ms", "retries"}  # fmt: skip
        if action == "number":
            column = rng.choice(sorted(numbers))
            conn.execute(f"UPDATE {table} SET {column} = {column} + 1 WHERE rowid = ?", (rowid,))
            return f"{table} number {column} row {rowid}"
        texts = [c for c in columns if c not in numbers and c != "digest"]
        column = rng.choice(texts)
        (value,) = conn.execute(
            f"SELECT CAST({column} AS BLOB) FROM {table} WHERE rowid = ?", (rowid,)
        ).fetchone()
        if not value:  # NULL or empty (an unset finish_reason, no error): give it a value
            conn.execute(f"UPDATE {table} SET {column} = 'x' WHERE rowid = ?", (rowid,))
            return f"{table} flip {column} (set) row {rowid}"
        data = bytearray(value)
        data[rng.randrange(len(data))] ^= rng.randrange(1, 256)
        conn.execute(
            f"UPDATE {table} SET {column} = CAST(? AS TEXT) WHERE rowid = ?", (bytes(data), rowid)
        )
        return f"{table} flip {column} row {rowid}"
