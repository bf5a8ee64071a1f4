"""Budgets: the run stops before a stage once spent, records why, and continues when raised."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.conftest import EXAMPLE, SMALL, Cli, without_call_ids

PRICES = [
    "--set",
    "models.target.prices.input=1",
    "--set",
    "models.target.prices.output=1",
    "--set",
    "models.optimizer.prices.input=5",
    "--set",
    "models.optimizer.prices.output=20",
]


def _work(db: str) -> list[tuple[str, object]]:
    """Every event but the budget's own, as (type, payload without run-scoped call ids)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, payload FROM events ORDER BY seq").fetchall()
    return [(t, without_call_ids(json.loads(p))) for t, p in rows if not t.startswith("budget.")]


def test_a_token_budget_stops_the_run_and_raising_it_continues(cli: Cli, tmp_path: Path) -> None:
    reference = str(tmp_path / "free.db")
    assert cli("init", str(EXAMPLE), "--db", reference, "--name", "b", *SMALL).code == 0
    assert cli("run", "--db", reference).code == 0
    db = str(tmp_path / "budget.db")
    assert (
        cli(
            "init",
            str(EXAMPLE),
            "--db",
            db,
            "--name",
            "b",
            *SMALL,
            "--set",
            "budget.max_tokens=8000",
        ).code
        == 0
    )
    res = cli("run", "--db", db)
    assert (
        res.code == 1 and "budget exhausted before stage" in res.err and "--max-tokens" in res.err
    )
    stop = cli("events", "--db", db, "--type", "budget.exhausted", "--json").json()[-1]["payload"]
    assert stop["spent_tokens"] >= 8000 == stop["max_tokens"]
    status = cli("status", "--db", db, "--json").json()
    assert status["tokens"] == stop["spent_tokens"] and not status["done"]
    assert cli("run", "--db", db).code == 1  # still spent: stops again, nothing runs
    assert len(cli("events", "--db", db, "--type", "budget.exhausted", "--json").json()) == 1
    assert cli("run", "--db", db, "--max-tokens", "10000000").code == 0
    assert (
        cli("events", "--db", db, "--type", "budget.set", "--json").json()[0]["payload"][
            "max_tokens"
        ]
        == 10000000
    )
    assert (
        _work(db)[1:] == _work(reference)[1:]
    )  # no work lost or repeated; only run.created differs
    assert cli("replay", "--db", db, "--verify").code == 0


def test_a_cost_budget_needs_prices_and_uses_them(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "usd.db")
    res = cli("init", str(EXAMPLE), "--db", db, "--set", "budget.max_usd=1")
    assert res.code == 2 and "budget.max_usd needs models.target.prices" in res.err
    args = [*SMALL, *PRICES, "--set", "budget.max_usd=0.05"]
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "u", *args).code == 0
    assert cli("run", "--db", db).code == 1
    status = cli("status", "--db", db, "--json").json()
    assert status["cost"] >= 0.05 and status["budget"]["max_usd"] == 0.05
    assert cli("run", "--db", db, "--max-usd", "100").code == 0
    assert cli("replay", "--db", db, "--verify").code == 0


def test_a_forged_budget_stop_is_refused(cli: Cli, small_run: Path) -> None:
    with sqlite3.connect(small_run) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        seq, payload = conn.execute(
            "SELECT seq, payload FROM events WHERE type = 'reflection.planned'"
        ).fetchone()
        conn.execute(
            "UPDATE events SET type = 'budget.exhausted', payload = ? WHERE seq = ?",
            (
                json.dumps(
                    {
                        "stage": "reflect_plan",
                        "spent_usd": None,
                        "spent_tokens": 1,
                        "max_usd": None,
                        "max_tokens": 1,
                    }
                ),
                seq,
            ),
        )
    res = cli("replay", "--db", str(small_run), "--verify", "--json")
    assert res.code == 1
