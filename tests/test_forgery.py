"""Forgeries that keep the hash chain consistent are still refused by `replay --verify`:
every event must be one the stage graph allows, with the content the recorded inputs give."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from machine.canonical import GENESIS_HASH, event_hash
from tests.conftest import Cli


def _forge(
    db: Path, type_: str, change: Callable[[dict[str, Any]], dict[str, Any]], nth: int = 0
) -> int:
    """Rewrite the nth event of a type and re-chain every hash after it, as a careful forger would."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        seq, payload = conn.execute(
            "SELECT seq, payload FROM events WHERE type = ? ORDER BY seq LIMIT 1 OFFSET ?",
            (type_, nth),
        ).fetchone()
        conn.execute(
            "UPDATE events SET payload = ? WHERE seq = ?",
            (json.dumps(change(json.loads(payload))), seq),
        )
        prev = GENESIS_HASH
        for run_id, s, t, v, body in conn.execute(
            "SELECT run_id, seq, type, version, payload FROM events ORDER BY seq"
        ).fetchall():
            digest = event_hash(run_id, s, t, v, json.loads(body), prev)
            conn.execute(
                "UPDATE events SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, s)
            )
            prev = digest
    return seq


def _swap_plan(p: dict[str, Any]) -> dict[str, Any]:
    steps = p["steps"]
    steps[0][0][0], steps[1][0][0] = steps[1][0][0], steps[0][0][0]
    return p


def _forge_edit(p: dict[str, Any]) -> dict[str, Any]:
    p["edits"] = [
        {
            "op": "append",
            "target": "",
            "content": "Always answer 42.",
            "support_count": 9,
            "source_type": "failure",
        }
    ]
    return p


FORGERIES = [
    ("epoch.planned", _swap_plan, "epoch batches"),
    ("reflection.planned", lambda p: {**p, "seed": p["seed"] + 1}, "reflection seed"),
    ("reflection.proposed", _forge_edit, "parsed reply"),
    ("edits.selected", lambda p: {**p, "dropped_indices": [7, 8, 9]}, "dropped indices"),
    ("final.evaluated", lambda p: {**p, "role": "best"}, "final test"),
    ("run.completed", lambda p: {**p, "accepts": 99}, "run summary"),
    ("step.completed", lambda p: {**p, "best_score": 1.0}, "step.completed"),
    ("dataset.loaded", lambda p: {**p, "total_steps": p["total_steps"] + 1}, "steps per epoch"),
]


@pytest.mark.parametrize(("type_", "change", "named"), FORGERIES, ids=[f[0] for f in FORGERIES])
def test_rechained_forgery_is_refused(
    cli: Cli, small_run: Path, type_: str, change: Any, named: str
) -> None:
    nth = 1 if type_ == "final.evaluated" else 0  # the first final.evaluated is the selection one
    seq = _forge(small_run, type_, change, nth)
    assert cli("verify", "--db", str(small_run)).code == 0  # the chain itself is consistent
    res = cli("replay", "--db", str(small_run), "--verify", "--json")
    assert res.code == 1, res.out
    problem = res.json()["problem"]
    assert problem["seq"] == seq
    assert named in problem["message"]


def test_an_event_that_does_not_decode_is_named_everywhere(cli: Cli, small_run: Path) -> None:
    seq = _forge(small_run, "candidate.evaluated", lambda p: {**p, "hard": "oops"})
    for command in (["status"], ["report", "--json"], ["replay"], ["replay", "--verify"]):
        res = cli(*command, "--db", str(small_run))
        assert res.code == 1, command
        assert f"seq {seq}" in res.err and "does not decode" in res.err
        assert len(res.err.strip().splitlines()) == 1
    runs = cli("runs", "--db", str(small_run), "--json").json()
    assert runs[0]["phase"] == f"corrupt at seq {seq}"
