"""`verify` covers the call journal and the runs table: a journaled call that an event names
must be there, answered, with the reply and tokens the event records; a text a call names
must be stored; a run's kind must match its first event; bytes that are not text are named.
No command ends in a traceback on any of it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Cli

Conn = sqlite3.Connection


def _named_calls(conn: Conn) -> list[str]:
    """Ids of answered calls that reflection events name (their CallRecord)."""
    payloads = conn.execute("SELECT payload FROM events WHERE type = 'reflection.proposed'")
    return [json.loads(p)["call"]["call_id"] for (p,) in payloads]


def _swap_replies(conn: Conn) -> None:
    a, b = _named_calls(conn)[:2]
    ra = conn.execute("SELECT response_blob FROM llm_calls WHERE id = ?", (a,)).fetchone()[0]
    rb = conn.execute("SELECT response_blob FROM llm_calls WHERE id = ?", (b,)).fetchone()[0]
    conn.execute("UPDATE llm_calls SET response_blob = ? WHERE id = ?", (rb, a))
    conn.execute("UPDATE llm_calls SET response_blob = ? WHERE id = ?", (ra, b))


def _edit_tokens(conn: Conn) -> None:
    call = _named_calls(conn)[0]
    conn.execute("UPDATE llm_calls SET tokens_out = tokens_out + 1 WHERE id = ?", (call,))


def _delete_row(conn: Conn) -> None:
    conn.execute("DELETE FROM llm_calls WHERE id = ?", (_named_calls(conn)[0],))


def _fail_row(conn: Conn) -> None:
    conn.execute("UPDATE llm_calls SET status = 'failed' WHERE id = ?", (_named_calls(conn)[0],))


def _edit_rollout_tokens(conn: Conn) -> None:
    payload = conn.execute(
        "SELECT payload FROM events WHERE type = 'rollout.scored' LIMIT 1"
    ).fetchone()[0]
    call = json.loads(payload)["call_ids"][0]
    conn.execute("UPDATE llm_calls SET tokens_in = tokens_in + 5 WHERE id = ?", (call,))


def _delete_request_text(conn: Conn) -> None:
    call = _named_calls(conn)[0]
    blob = conn.execute("SELECT request_blob FROM llm_calls WHERE id = ?", (call,)).fetchone()[0]
    conn.execute("DROP TRIGGER IF EXISTS blobs_no_delete")
    conn.execute("DELETE FROM blobs WHERE hash = ?", (blob,))


def _hide_as_bench(conn: Conn) -> None:
    conn.execute("UPDATE runs SET kind = 'bench'")


def _not_text(conn: Conn) -> None:
    call = _named_calls(conn)[0]
    conn.execute("UPDATE llm_calls SET model = CAST(X'80FF' AS TEXT) WHERE id = ?", (call,))


TAMPERS: list[tuple[str, Callable[[Conn], None], str]] = [
    ("swapped_replies", _swap_replies, "the journal holds another reply"),
    ("edited_tokens", _edit_tokens, "tokens"),
    ("deleted_row", _delete_row, "is missing from the call journal"),
    ("failed_row", _fail_row, "journaled as failed"),
    ("rollout_tokens", _edit_rollout_tokens, "journal tokens"),
    ("deleted_text", _delete_request_text, "text is missing"),
    ("kind_bench", _hide_as_bench, "kind 'bench' but starts with run.created"),
    ("not_text", _not_text, "not text"),
]


@pytest.mark.parametrize(("name", "tamper", "named"), TAMPERS, ids=[t[0] for t in TAMPERS])
def test_a_tampered_journal_or_run_row_is_named_by_verify(
    cli: Cli, small_run: Path, tmp_path: Path, name: str, tamper: Callable[[Conn], None], named: str
) -> None:
    assert cli("verify", "--db", str(small_run)).code == 0
    db = tmp_path / "tampered.db"
    shutil.copy(small_run, db)
    with sqlite3.connect(db) as conn:
        tamper(conn)
    res = cli("verify", "--db", str(db))
    assert res.code == 1 and named in res.err, res.out + res.err
    assert len(res.err.strip().splitlines()) == 1
    for command in (["calls", "--json"], ["status"], ["report", "--json"], ["runs"]):
        other = cli(*command, "--db", str(db))
        assert "Traceback" not in other.err and len(other.err.strip().splitlines()) <= 1


def _with_failed_attempts(source: Path, db: Path) -> str:
    """A copy of `source` with a call that failed twice (a provider overloaded, the stage then
    failed), journaled by the real writer; the call's id (the attempts are ID-f0, ID-f1)."""
    from skillopt.ledger.journal import Journal
    from skillopt.ledger.ledger import Ledger

    shutil.copy(source, db)
    ledger = Ledger.open(str(db))
    try:
        journal = Journal(ledger)
        with sqlite3.connect(db) as conn:
            answered = journal.find(_named_calls(conn)[0])[0]
        for attempt in range(2):
            failed = answered.model_copy(
                update={
                    "status": "failed",
                    "response_blob": None,
                    "error_class": "APIStatusError",
                    "error_message": f"attempt {attempt + 1}: HTTP 529 overloaded",
                    "digest": None,
                    "id": "c0ffee" + answered.id[6:],
                    "call_key": "0ffee" + answered.call_key[5:],
                }
            )
            journal.record(failed)
    finally:
        ledger.close()
    return "c0ffee" + answered.id[6:]


def _failed_ids(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id FROM llm_calls WHERE status = 'failed' ORDER BY id")
        return [r[0] for r in rows]


ROW_TAMPERS: list[tuple[str, str, str]] = [
    # rows no event names: only their digests (and numbering) tell
    ("edited_error", "UPDATE llm_calls SET error_message = 'ok' WHERE id = :f0", "not the row"),
    ("failed_to_ok", "UPDATE llm_calls SET latency_ms = 1 WHERE id = :f1", "not the row"),
    ("deleted_attempt", "DELETE FROM llm_calls WHERE id = :f0", "-f0: a failed attempt is missing"),
    ("dropped_digest", "UPDATE llm_calls SET digest = NULL WHERE id = :f1", "has no digest"),
]


@pytest.mark.parametrize(("name", "sql", "named"), ROW_TAMPERS, ids=[t[0] for t in ROW_TAMPERS])
def test_a_journal_row_no_event_names_is_checked_by_its_digest(
    cli: Cli, small_run: Path, tmp_path: Path, name: str, sql: str, named: str
) -> None:
    db = tmp_path / "attempts.db"
    base = _with_failed_attempts(small_run, db)
    assert _failed_ids(db) == [f"{base}-f0", f"{base}-f1"]
    assert cli("verify", "--db", str(db)).code == 0  # as written: every digest holds
    with sqlite3.connect(db) as conn:
        conn.execute(sql, {"f0": f"{base}-f0", "f1": f"{base}-f1"})
    res = cli("verify", "--db", str(db))
    assert res.code == 1 and named in res.err, res.out + res.err
    assert len(res.err.strip().splitlines()) == 1


def test_journal_rows_carry_digests_of_what_was_written(small_run: Path) -> None:
    from skillopt.ledger.journal import call_digest
    from skillopt.ledger.tables import CallRow

    with sqlite3.connect(small_run) as conn:
        conn.row_factory = sqlite3.Row
        rows = [CallRow(**dict(r)) for r in conn.execute("SELECT * FROM llm_calls")]
    assert rows and all(r.digest == call_digest(r) for r in rows)
    edited = rows[0].model_copy(update={"tokens_out": rows[0].tokens_out + 1})
    assert call_digest(edited) != rows[0].digest
