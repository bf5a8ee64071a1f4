"""Forgeries that keep the hash chain consistent are still refused by `replay --verify`:
every event must be one the stage graph allows, with the content the recorded inputs give."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from skillopt.machine.core.canonical import GENESIS_HASH, canonical_json, event_hash
from tests.conftest import EXAMPLE, PLAIN, SMALL, Cli


def _forge(
    db: Path, type_: str, change: Callable[[dict[str, Any]], dict[str, Any]], nth: int = 0
) -> int:
    """Rewrite the nth event of a type and re-chain every hash after it, as a careful forger would
    (canonical text; the stored status view, which would betray the change, removed)."""
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("DELETE FROM status_views")
        seq, payload = conn.execute(
            "SELECT seq, payload FROM events WHERE type = ? ORDER BY seq LIMIT 1 OFFSET ?",
            (type_, nth),
        ).fetchone()
        conn.execute(
            "UPDATE events SET payload = ? WHERE seq = ?",
            (canonical_json(change(json.loads(payload))), seq),
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
    ("epoch.planned", 0, _swap_plan, "epoch batches"),
    ("reflection.planned", 0, lambda p: {**p, "seed": p["seed"] + 1}, "reflection seed"),
    ("reflection.proposed", 0, _forge_edit, "parsed reply"),
    ("reflection.proposed", 0, lambda p: {**p, "ok": False}, "parsed reply"),
    ("edits.selected", 0, lambda p: {**p, "dropped_indices": [7, 8, 9]}, "dropped indices"),
    ("edits.selected", 0, lambda p: {**p, "budget": p["budget"] + 1}, "budget"),
    ("final.evaluated", 1, lambda p: {**p, "role": "best"}, "final test"),
    ("final.evaluated", 0, lambda p: {**p, "promoted": True}, "promotion"),
    ("run.completed", 0, lambda p: {**p, "accepts": 99}, "run summary"),
    ("step.completed", 0, lambda p: {**p, "best_score": 1.0}, "step.completed"),
    ("dataset.loaded", 0, lambda p: {**p, "total_steps": p["total_steps"] + 1}, "steps per epoch"),
    ("baseline.evaluated", 0, lambda p: {**p, "soft": 0.99}, "n, hard, soft"),
    ("patches.merged", 0, lambda p: {**p, "edits": p["edits"][:1]}, "merged patch"),
    # another stored text (a hash naming no text at all: verify names it, see below)
    ("candidate.built", 0, lambda p: {**p, "candidate_hash": p["parent_hash"]}, "candidate hash"),
    ("candidate.evaluated", 0, lambda p: {**p, "hard": 0.99}, "n, hard, soft"),
    ("gate.decided", 0, lambda p: {**p, "current_score": 0.0}, "gate inputs"),
    ("epoch.completed", 0, lambda p: {**p, "best_score": 0.0}, "epoch end"),
]


def _refused(cli: Cli, db: Path, seq: int, named: str) -> None:
    assert cli("verify", "--db", str(db)).code == 0  # the chain itself is consistent
    res = cli("replay", "--db", str(db), "--verify", "--json")
    assert res.code == 1, res.out
    problem = res.json()["problem"]
    assert problem["seq"] == seq
    assert named in problem["message"]


@pytest.mark.parametrize(
    ("type_", "nth", "change", "named"), FORGERIES, ids=[f"{f[0]}-{f[3]}" for f in FORGERIES]
)
def test_rechained_forgery_is_refused(
    cli: Cli, small_run: Path, type_: str, nth: int, change: Any, named: str
) -> None:
    _refused(cli, small_run, _forge(small_run, type_, change, nth), named)


def test_a_forged_hash_naming_no_stored_text_is_named_by_verify(cli: Cli, small_run: Path) -> None:
    seq = _forge(small_run, "candidate.built", lambda p: {**p, "candidate_hash": "f" * 64})
    res = cli("verify", "--db", str(small_run))
    assert res.code == 1, res.out
    assert f"seq {seq}: candidate.built: candidate_hash ffffffffffff is missing" in res.err


def test_a_forged_skip_reason_is_refused(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "skips.db"
    unusable = ["--set", "models.optimizer.options.unusable_rate=1.0"]
    args = [*unusable, "--set", "optimizer.max_unusable_steps=0", *SMALL]  # 0: never stop
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "s", *args).code == 0
    assert cli("run", "--db", str(db)).code == 0
    seq = _forge(db, "step.skipped", lambda p: {**p, "reason": "nothing_applied"})
    _refused(cli, db, seq, "skip reason")


def test_an_event_that_does_not_decode_is_named_everywhere(cli: Cli, small_run: Path) -> None:
    seq = _forge(small_run, "candidate.evaluated", lambda p: {**p, "hard": "oops"})
    for command in (["status"], ["report", "--json"], ["replay"], ["replay", "--verify"]):
        res = cli(*command, "--db", str(small_run))
        assert res.code == 1, command
        assert f"seq {seq}" in res.err and "does not decode" in res.err
        assert len(res.err.strip().splitlines()) == 1
    runs = cli("runs", "--db", str(small_run), "--json").json()
    assert runs[0]["phase"] == f"corrupt at seq {seq}"


def _swap_prompt(db: Path) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Point a reflection's prompt at another stored text (a trajectory)."""
    with sqlite3.connect(db) as conn:
        other = json.loads(
            conn.execute(
                "SELECT payload FROM events WHERE type = 'rollout.scored' LIMIT 1"
            ).fetchone()[0]
        )["trajectory_hash"]
    return lambda p: {**p, "call": {**p["call"], "prompt_hash": other}}


def test_evidence_cannot_be_swapped_or_relabelled(cli: Cli, tmp_path: Path) -> None:
    cases = [
        ("reflection.proposed", 0, "swap", "reflection prompt"),
        (
            "patches.merged",
            0,
            lambda p: {**p, "nodes": [{**p["nodes"][0], "error": "made up"}, *p["nodes"][1:]]},
            "merge node",
        ),
        (
            "final.evaluated",
            0,
            lambda p: {**p, "gate_score": 0.99, "promoted": True},
            "final selection",
        ),
    ]
    for k, (type_, nth, change, named) in enumerate(cases):
        db = tmp_path / f"c{k}.db"
        args = [*SMALL, *PLAIN]  # final == best: the final selection reuses its score
        assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "c", *args).code == 0
        assert cli("run", "--db", str(db)).code == 0
        seq = _forge(db, type_, _swap_prompt(db) if change == "swap" else change, nth)
        _refused(cli, db, seq, named)


def test_a_stage_failure_after_completion_is_refused(cli: Cli, small_run: Path) -> None:
    with sqlite3.connect(small_run) as conn:
        run_id, last, prev = conn.execute(
            "SELECT run_id, seq, hash FROM events ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        payload = {"stage": "gate", "step": 1, "error_type": "X", "message": "late"}
        digest = event_hash(run_id, last + 1, "stage.failed", 1, payload, prev)
        conn.execute(
            "INSERT INTO events VALUES (?, ?, 'stage.failed', 1, ?, 't', ?, ?)",
            (run_id, last + 1, canonical_json(payload), prev, digest),
        )
    _refused(cli, small_run, last + 1, "after run.completed")
    assert (
        cli("status", "--db", str(small_run), "--json").json()["last_failure"]["message"] == "late"
    )
