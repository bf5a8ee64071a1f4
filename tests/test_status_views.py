"""`skillopt status` answers from the status view stored with the run's last event, prints
exactly what folding the run prints, never shows a view that does not describe the last event,
and `verify` re-derives the stored view."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

import skillopt.commands.runner
from skillopt.commands.cli.admin import _check_status_view
from skillopt.commands.runner import record
from skillopt.ledger.database import head_revision
from skillopt.ledger.ledger import Ledger
from skillopt.machine.core.events import BudgetSet
from tests.conftest import (
    ALL_MECHANISMS,
    EXAMPLE,
    ROOT,
    SMALL,
    Cli,
    copy_into_old_schema,
    event_rows,
)


def stored_view(db: Path, run: str | None = None) -> tuple[int, str, int, str] | None:
    with sqlite3.connect(db) as conn:
        query = "SELECT v.seq, v.hash, v.format, v.view FROM status_views v JOIN runs r"
        query += " ON r.id = v.run_id WHERE r.name = ?" if run else " ON r.id = v.run_id"
        return conn.execute(query, (run,) if run else ()).fetchone()


def last_event(db: Path, run: str) -> tuple[int, str]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT e.seq, e.hash FROM events e JOIN runs r ON r.id = e.run_id "
            "WHERE r.name = ? ORDER BY e.seq DESC LIMIT 1",
            (run,),
        ).fetchone()


def same_both_ways(cli: Cli, db: Path, *args: str) -> dict:
    """status and status --fold print the same bytes, as text and as JSON; returns the JSON."""
    stored = cli("status", "--db", str(db), *args, "--json")
    folded = cli("status", "--db", str(db), *args, "--json", "--fold")
    assert stored.code == folded.code == 0, stored.err + folded.err
    assert stored.out == folded.out
    assert (
        cli("status", "--db", str(db), *args).out
        == cli("status", "--db", str(db), *args, "--fold").out
    )
    return stored.json()


def test_every_append_stores_the_view_and_status_prints_what_folding_prints(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    assert (
        cli("init", str(EXAMPLE), "--db", str(db), "--name", "m", *SMALL, *ALL_MECHANISMS).code == 0
    )
    phases = set()
    while True:
        view = same_both_ways(cli, db)
        assert stored_view(db, "m")[:2] == last_event(db, "m")  # the runner keeps it current
        phases.add(view["phase"])
        if view["done"]:
            break
        assert cli("run", "--db", str(db), "--max-stages", "1").code == 0
    # the walk stood before every stage of every mechanism; the finished run verifies with its view
    assert {
        "dataset",
        "baseline",
        "rollout",
        "reflect",
        "aggregate",
        "evaluate",
        "gate",
        "appendix",
        "review",
        "slow_update",
        "meta_skill",
        "final_test",
        "done",
    } <= phases
    checked = cli("verify", "--db", str(db), "--json").json()
    assert checked["ok"] and checked["runs"][0]["status_view"] == "ok"


def test_budget_stops_failures_and_forks_store_their_views_too(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    init = ["init", str(EXAMPLE), "--db", str(db), "--name", "b", *SMALL]
    assert cli(*init, "--set", "budget.max_tokens=3000").code == 0
    assert cli("run", "--db", str(db)).code == 1  # budget.exhausted
    assert same_both_ways(cli, db)["budget"]["max_tokens"] == 3000
    assert stored_view(db, "b")[:2] == last_event(db, "b")
    with sqlite3.connect(db) as conn:  # lose the skill texts: the next stage fails
        saved = conn.execute("SELECT hash, text FROM blobs").fetchall()
        conn.execute("DELETE FROM blobs")
    assert cli("run", "--db", str(db), "--max-tokens", "100000000").code == 1
    view = same_both_ways(cli, db)
    assert view["budget"]["max_tokens"] == 100000000 and view["last_failure"] is not None
    assert stored_view(db, "b")[:2] == last_event(db, "b")  # budget.set, then stage.failed
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO blobs (hash, text) VALUES (?, ?)", saved)
    assert cli("run", "--db", str(db), "--max-stages", "4").code == 0
    assert cli("fork", "--db", str(db), "--run", "b", "--at", "5", "--name", "f").code == 0
    assert same_both_ways(cli, db, "--run", "f")["events"] == 5
    assert stored_view(db, "f")[:2] == last_event(db, "f")


def test_runs_are_found_as_the_other_commands_find_them(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    for name in ("first", "second"):
        assert cli("init", str(EXAMPLE), "--db", str(db), "--name", name, *SMALL).code == 0
    assert cli("run", "--db", str(db), "--run", "first", "--max-stages", "2").code == 0
    assert same_both_ways(cli, db)["run"] == "second"  # the most recent run
    assert same_both_ways(cli, db, "--run", "first")["events"] > 1
    run_id = cli("runs", "--db", str(db), "--json").json()[0]["id"]
    assert same_both_ways(cli, db, "--run", run_id)["run"] == "first"
    res = cli("status", "--db", str(db), "--run", "nope")
    assert res.code == 2 and "no run named 'nope'" in res.err
    res = cli("status", "--db", str(tmp_path / "missing.db"))
    assert res.code == 2 and "no ledger at" in res.err


def test_a_view_that_does_not_describe_the_last_event_is_never_shown(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "s", *SMALL).code == 0
    assert cli("run", "--db", str(db), "--max-stages", "3").code == 0
    before = stored_view(db, "s")
    # an event appended without a view (as a skillopt before status views appends)
    ledger = Ledger.open(str(db))
    run = ledger.find_run("s")
    seq = len(ledger.read(run.id))
    ledger.append(run.id, seq, [BudgetSet(max_usd=None, max_tokens=123)], "2026-01-01T00:00:00")
    ledger.close()
    assert stored_view(db, "s") == before  # still keyed by the event before
    view = same_both_ways(cli, db)
    assert view["events"] == seq + 1 and view["budget"]["max_tokens"] == 123
    checked = cli("verify", "--db", str(db), "--json").json()  # a view of an earlier event: ok
    assert checked["ok"] and checked["runs"][0]["status_view"] == "ok"
    # a view in another format (written by another skillopt) is not shown, nor checked
    assert cli("db", "refresh-status", "--db", str(db)).code == 0
    with sqlite3.connect(db) as conn:
        conn.execute('UPDATE status_views SET format = 999, view = \'{"run": "other"}\'')
    assert same_both_ways(cli, db)["run"] == "s"
    checked = cli("verify", "--db", str(db), "--json").json()
    assert checked["ok"] and checked["runs"][0]["status_view"] == "stale"


def test_verify_catches_a_tampered_view_and_refresh_status_rewrites_it(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "t", *SMALL).code == 0
    assert cli("run", "--db", str(db), "--max-stages", "4").code == 0
    seq, _, _, view = stored_view(db, "t")
    forged = view.replace('"done":false', '"done":true')
    assert forged != view
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE status_views SET view = ?", (forged,))
    assert cli("status", "--db", str(db), "--json").json()["done"] is True  # status reads it
    res = cli("verify", "--db", str(db))
    assert res.code == 1
    assert f"run t: seq {seq}: the stored status view differs" in res.err
    assert "refresh-status" in res.err
    refreshed = cli("db", "refresh-status", "--db", str(db), "--json")
    assert refreshed.code == 0 and refreshed.json() == [{"run": "t", "seq": seq, "skipped": None}]
    assert stored_view(db, "t")[3] == view
    assert cli("verify", "--db", str(db)).code == 0
    assert cli("status", "--db", str(db), "--json").json()["done"] is False


def test_status_from_a_stored_view_loads_neither_the_database_stack_nor_the_core(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "q", *SMALL).code == 0
    assert cli("run", "--db", str(db), "--max-stages", "3").code == 0
    probe = (
        "import sys\n"
        "from skillopt.commands.cli import app\n"
        "try:\n"
        "    app(sys.argv[1:])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "heavy = ('sqlalchemy', 'sqlmodel', 'skillopt.machine.core.events', 'skillopt.machine.loop.reducer', 'openai')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )

    def loaded(*args: str) -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", probe, "status", "--db", str(db), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(out.splitlines()[-1].replace("'", '"'))

    assert loaded() == []
    assert loaded("--fold") == [
        "skillopt.machine.core.events",
        "skillopt.machine.loop.reducer",
        "sqlalchemy",
        "sqlmodel",
    ]


def test_a_ledger_of_the_previous_schema_upgrades_and_gets_views(cli: Cli, tmp_path: Path) -> None:
    source_db = tmp_path / "source.db"
    assert cli("init", str(EXAMPLE), "--db", str(source_db), "--name", "old", *SMALL).code == 0
    assert cli("run", "--db", str(source_db), "--max-stages", "3").code == 0
    old = tmp_path / "old.db"
    copy_into_old_schema(source_db, old, "0003_bench_runs")  # the schema before status views
    events = len(event_rows(source_db))
    with sqlite3.connect(old) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "status_views" not in tables
    before = event_rows(old)

    view = same_both_ways(cli, old)  # the first open upgrades it; no view yet: status folds
    assert view["events"] == events
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision(),
        )
        assert conn.execute("SELECT count(*) FROM status_views").fetchone() == (0,)
    assert event_rows(old) == before  # nothing recorded was touched
    assert cli("db", "refresh-status", "--db", str(old)).code == 0
    assert stored_view(old, "old")[:2] == last_event(old, "old")
    assert same_both_ways(cli, old) == view
    assert cli("run", "--db", str(old), "--max-stages", "1").code == 0
    assert stored_view(old, "old")[:2] == last_event(old, "old")
    assert cli("verify", "--db", str(old)).code == 0


def test_runs_lists_from_the_stored_views_what_folding_gives(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    for name in ("done", "midway"):
        assert cli("init", str(EXAMPLE), "--db", str(db), "--name", name, *SMALL).code == 0
    assert cli("run", "--db", str(db), "--run", "done").code == 0
    assert cli("run", "--db", str(db), "--run", "midway", "--max-stages", "4").code == 0
    listed = cli("runs", "--db", str(db), "--json")
    assert listed.code == 0
    assert [(r["run"], r["phase"]) for r in listed.json()] == [
        ("done", "done"),
        ("midway", "reflect_plan"),
    ]
    with sqlite3.connect(db) as conn:  # the view is what runs reads ...
        conn.execute(
            'UPDATE status_views SET view = replace(view, \'"phase":"done"\', \'"phase":"forged"\')'
        )
    assert cli("runs", "--db", str(db), "--json").json()[0]["phase"] == "forged"
    with sqlite3.connect(db) as conn:  # ... and without views the folds give the same list
        conn.execute("DELETE FROM status_views")
    assert cli("runs", "--db", str(db), "--json").out == listed.out


def test_runs_created_at_the_same_instant_are_ordered_by_name_both_ways(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "runs.db"
    with freeze_time("2026-03-01T00:00:00Z"):
        for name in ("b", "a"):
            assert cli("init", str(EXAMPLE), "--db", str(db), "--name", name, *SMALL).code == 0
    assert same_both_ways(cli, db)["run"] == "b"  # (created_at, name): b is the last


def test_a_run_whose_only_optimizer_calls_come_late_prints_the_same_both_ways(
    cli: Cli, tmp_path: Path
) -> None:
    # A skill with nothing left to fix: no reflection, so the first optimizer tokens are the
    # slow update's, whose stage name sorts after the rollouts' (the roles' names do not).
    db = tmp_path / "runs.db"
    # the demo as config_version 2 recorded it: its best skill scores 1.0 (version 3's
    # insert_after layout takes the offline demo elsewhere)
    learn = ["--set", "config_version=2"]
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "learn", *learn).code == 0
    assert cli("run", "--db", str(db)).code == 0
    best = tmp_path / "best.md"
    assert cli("skill", "export", "best", "-o", str(best), "--db", str(db)).code == 0
    late = [
        *["--set", f"env.skill_init={best}", "--set", "gradient.failure_only=true"],
        *["--set", "models.target.options.base_slip=0"],
    ]
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "late", *SMALL, *late).code == 0
    phases = []
    while not (view := same_both_ways(cli, db, "--run", "late"))["done"]:
        phases.append(view["phase"])
        assert cli("run", "--db", str(db), "--run", "late", "--max-stages", "1").code == 0
    assert "reflect" not in phases and "meta_skill" in phases


def test_verify_checks_a_view_appended_after_it_read_the_events(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "w", *SMALL).code == 0
    assert cli("run", "--db", str(db), "--max-stages", "3").code == 0
    ledger = Ledger.open(str(db))
    run = ledger.find_run("w")
    stored = ledger.read(run.id)  # verify has read the events; a runner appends meanwhile
    state = skillopt.commands.runner.load_state(ledger, run.id)
    record(ledger, run.id, state, [BudgetSet(max_usd=None, max_tokens=77)], "2026-01-01T00:00:00")
    assert _check_status_view(ledger, run.id, stored) == ("ok", None)
    ledger.close()


def test_refresh_status_skips_a_run_another_process_appends_to(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "runs.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "busy", *SMALL).code == 0
    fold = skillopt.commands.runner.load_state

    def fold_while_another_writer_appends(ledger: Ledger, run_id: str) -> Any:
        state = fold(ledger, run_id)
        other = Ledger.open(str(db))
        other.append(run_id, state.seq, [BudgetSet(max_usd=None, max_tokens=5)], "2026-01-01")
        other.close()
        return state

    monkeypatch.setattr(skillopt.commands.runner, "load_state", fold_while_another_writer_appends)
    res = cli("db", "refresh-status", "--db", str(db), "--json")
    assert res.code == 0, res.err
    (row,) = res.json()
    assert row["run"] == "busy" and row["seq"] is None and "another process" in row["skipped"]
    monkeypatch.undo()
    assert same_both_ways(cli, db)["budget"]["max_tokens"] == 5
    assert cli("verify", "--db", str(db)).code == 0
