"""The LLM call journal: every call recorded, completed calls never paid twice."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from skillopt.ledger.database import head_revision
from skillopt.ledger.ledger import Ledger
from tests.conftest import (
    EXAMPLE,
    SMALL,
    Cli,
    copy_into_old_schema,
    count_events,
    event_rows,
    skillopt_process,
)
from tests.fake_cache import text_of
from tests.fakes import FakeProvider, Fault
from tests.test_providers import KEY, roles


def _call_refs(value: object) -> list[str]:
    if isinstance(value, dict):
        found = [value["call_id"]] if value.get("call_id") else []
        found += list(value.get("call_ids", []))
        return found + [x for v in value.values() for x in _call_refs(v)]
    if isinstance(value, list):
        return [x for v in value for x in _call_refs(v)]
    return []


def test_every_event_call_reference_resolves(cli: Cli, small_run: Path) -> None:
    calls = {c["id"]: c for c in cli("calls", "--db", str(small_run), "--json").json()}
    events = cli("events", "--db", str(small_run), "--json").json()
    refs = [r for e in events for r in _call_refs(e["payload"])]
    assert refs and set(refs) <= set(calls)
    assert len(refs) == len(set(refs)) == len(calls)  # each call is used by exactly one event
    stages = {c["stage"] for c in calls.values()}
    assert {"rollout:train", "rollout:selection", "rollout:test", "reflect", "merge"} <= stages
    one = next(c for c in calls.values() if c["stage"] == "reflect")
    shown = cli("calls", "show", one["id"], "--db", str(small_run)).out
    assert "--- system ---" in shown and "## Current Skill" in shown and "--- reply ---" in shown


def test_failed_attempts_are_kept_but_never_reused(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKILLOPT_TEST_KEY", KEY)
    fake = FakeProvider({"train": 12, "selection": 12, "test": 12})
    try:
        fake.faults.append(Fault(401))
        db = str(tmp_path / "remote.db")
        args = [*SMALL, *roles("anthropic", fake.url), "--set", "train.workers=1"]
        assert cli("init", str(EXAMPLE), "--db", db, "--name", "r", *args).code == 0
        assert cli("run", "--db", db).code == 1
        assert cli("run", "--db", db).code == 0
    finally:
        fake.close()
    calls = cli("calls", "--db", db, "--json").json()
    failed = [c for c in calls if c["status"] == "failed"]
    assert len(failed) == 1 and "HTTP 401" in failed[0]["error"]
    retried = [c for c in calls if c["unit"] == failed[0]["unit"] and c["status"] == "ok"]
    assert len(retried) == 1 and retried[0]["id"] == failed[0]["id"].split("-f")[0]


def _journaled(db: Path) -> set[tuple[str, str]]:
    """(system, last user message) of every answered call."""
    ledger = Ledger.open(str(db))
    try:
        with ledger.engine.connect() as conn:
            blobs = (
                conn.execute(sa.text("SELECT request_blob FROM llm_calls WHERE status = 'ok'"))
                .scalars()
                .all()
            )
        out = set()
        for h in blobs:
            request = json.loads(ledger.get_blob(h))
            out.add((request["system"], request["messages"][-1][1]))
        return out
    finally:
        ledger.close()


def test_a_killed_remote_run_never_pays_twice_for_a_journaled_call(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SKILLOPT_TEST_KEY", KEY)
    fake = FakeProvider({"train": 12, "selection": 12, "test": 12}, latency_s=0.02)
    try:
        args = [
            *SMALL,
            *roles("anthropic", fake.url),
            "--set",
            "train.workers=2",
            "--set",
            "gradient.workers=2",
        ]
        reference = tmp_path / "reference.db"
        assert cli("init", str(EXAMPLE), "--db", str(reference), "--name", "r", *args).code == 0
        assert cli("run", "--db", str(reference)).code == 0
        db = tmp_path / "killed.db"
        assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *args).code == 0
        # inside step 1's reflection, inside its candidate's selection rollout (rollouts 19..30), later
        for type_, at_least in [
            ("reflection.proposed", 1),
            ("rollout.scored", 24),
            ("reflection.proposed", 5),
        ]:
            proc = skillopt_process("run", "--db", str(db))
            deadline = time.monotonic() + 60
            while count_events(db, type_) < at_least:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()  # type: ignore[union-attr]
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            before, seen = _journaled(db), len(fake.log)
            finish = skillopt_process("run", "--db", str(db), "--max-stages", "3")
            assert finish.wait(timeout=120) == 0, finish.stderr.read()  # type: ignore[union-attr]
            for r in fake.log[seen:]:  # nothing journaled before the kill was asked again
                system = "".join(b["text"] for b in r.body["system"])
                # the last message's text (its blocks joined: a cached prefix is one)
                assert (system, text_of(r.body["messages"][-1]["content"])) not in before
        assert skillopt_process("run", "--db", str(db)).wait(timeout=120) == 0
    finally:
        fake.close()
    assert event_rows(db) == event_rows(reference)
    assert cli("replay", "--db", str(db), "--verify").code == 0


def test_a_foundation_schema_ledger_upgrades_in_place(
    cli: Cli, small_run: Path, tmp_path: Path
) -> None:
    old = tmp_path / "old.db"
    # the schema of the first release: no call journal
    copy_into_old_schema(small_run, old, "0001_foundation")
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            "0001_foundation",
        )
        assert not conn.execute(
            "SELECT name FROM sqlite_master WHERE name = 'llm_calls'"
        ).fetchall()
    before = event_rows(old)

    assert cli("status", "--db", str(old)).code == 0  # opening upgrades it
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision(),
        )
        assert conn.execute("SELECT count(*) FROM llm_calls").fetchone() == (0,)
    assert event_rows(old) == before  # nothing recorded was touched
    assert cli("verify", "--db", str(old)).code == 0
    assert cli("replay", "--db", str(old), "--verify").code == 0
    assert cli("fork", "--db", str(old), "--at", "60", "--name", "again").code == 0
    assert cli("run", "--db", str(old), "--run", "again").code == 0  # and it records calls now
    assert cli("calls", "--db", str(old), "--run", "again", "--json").json()
