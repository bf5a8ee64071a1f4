"""The ledger cannot be rewritten quietly: triggers, hash chain, decision re-derivation."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from skillopt.ledger.errors import ConflictError
from skillopt.ledger.ledger import Ledger
from skillopt.machine.core.canonical import canonical_json, event_hash
from skillopt.machine.core.events import StageFailed
from tests.conftest import Cli


def _first(db: Path, type_: str) -> tuple[int, str, dict]:
    with sqlite3.connect(db) as conn:
        run_id, seq, payload = conn.execute(
            "SELECT run_id, seq, payload FROM events WHERE type = ? ORDER BY seq LIMIT 1", (type_,)
        ).fetchone()
    return seq, run_id, json.loads(payload)


def _tamper(db: Path, seq: int, payload: dict, rechain: bool = False) -> None:
    """Rewrite one payload with a raw connection, bypassing the append-only trigger."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (canonical_json(payload), seq))
        if rechain:  # a careful forger also recomputes every hash and drops the status view
            conn.execute("DELETE FROM status_views")
            rows = conn.execute(
                "SELECT run_id, seq, type, version, payload, prev_hash FROM events ORDER BY seq"
            ).fetchall()
            prev = None
            for run_id, s, type_, version, body, prev_hash in rows:
                prev = prev_hash if prev is None else prev
                digest = event_hash(run_id, s, type_, version, json.loads(body), prev)
                conn.execute(
                    "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, s)
                )
                prev = digest


def test_update_and_delete_of_events_are_rejected(small_run: Path) -> None:
    with sqlite3.connect(small_run) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE events SET type = 'x' WHERE seq = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM events WHERE seq = 1")


def test_tampered_payload_is_named_by_verify_and_replay(cli: Cli, small_run: Path) -> None:
    assert cli("verify", "--db", str(small_run)).code == 0
    seq, _, payload = _first(small_run, "candidate.evaluated")
    _tamper(small_run, seq, {**payload, "hard": 1.0})
    res = cli("verify", "--db", str(small_run))
    assert res.code == 1
    assert f"seq {seq}" in res.err and "small" in res.err
    res = cli("replay", "--db", str(small_run), "--verify")
    assert res.code == 1
    assert f"seq {seq}" in res.err


def test_rechained_forgery_is_caught_by_decision_checks(cli: Cli, small_run: Path) -> None:
    seq, _, payload = _first(small_run, "gate.decided")
    flipped = "reject" if payload["action"] != "reject" else "accept_new_best"
    _tamper(small_run, seq, {**payload, "action": flipped}, rechain=True)
    assert cli("verify", "--db", str(small_run)).code == 0  # the chain itself is consistent
    res = cli("replay", "--db", str(small_run), "--verify", "--json")
    assert res.code == 1
    assert res.json()["problem"]["seq"] == seq
    assert "gate verdict" in res.json()["problem"]["message"]


def test_forged_score_is_recomputed_from_item_scores(cli: Cli, small_run: Path) -> None:
    seq, _, payload = _first(small_run, "baseline.evaluated")
    _tamper(small_run, seq, {**payload, "hard": payload["hard"] + 0.25}, rechain=True)
    res = cli("replay", "--db", str(small_run), "--verify", "--json")
    assert res.code == 1
    assert res.json()["problem"]["seq"] == seq


def test_stale_writer_gets_a_conflict_and_writes_nothing(small_run: Path) -> None:
    ledger = Ledger.open(str(small_run))
    run = ledger.find_run(None)
    before = ledger.read(run.id)
    event = StageFailed(stage="test", step=0, error_type="X", message="stale")
    with pytest.raises(ConflictError, match="expected last seq 3"):
        ledger.append(run.id, 3, [event], "t")
    assert ledger.read(run.id) == before
    appended = ledger.append(run.id, len(before), [event], "t")
    assert appended[0].seq == len(before) + 1
    ledger.close()


def test_newer_schema_is_refused_and_foreign_files_named(
    cli: Cli, small_run: Path, tmp_path: Path
) -> None:
    with sqlite3.connect(small_run) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_future'")
    res = cli("status", "--db", str(small_run))
    assert res.code == 2 and "newer skillopt" in res.err
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"these are my notes, not a database" * 40)
    res = cli("status", "--db", str(junk))
    assert res.code == 2 and "not a skillopt ledger" in res.err
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    res = cli("runs", "--db", str(other))
    assert res.code == 2 and "customers" in res.err


def test_missing_ledger_is_an_input_error(cli: Cli, tmp_path: Path) -> None:
    res = cli("status", "--db", str(tmp_path / "nope.db"))
    assert res.code == 2 and "skillopt init" in res.err
    assert not (tmp_path / "nope.db").exists()
