"""Early reject on (the default from config_version 4) and off, step buffer on: the same run
except the selection rollouts it did not pay for and the fields that record the stop."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, SMALL, Cli, sets, without_call_ids

SEEDS = (1, 2, 3, 4, 5)
# What an early stop records instead of a full pass's measurement (machine/decisions/gate.py).
STOP_FIELDS = {
    "candidate.evaluated": {"n", "hard", "soft", "gate_score", "early_stop"},
    "update.gated": {"n", "hard", "soft", "gate_score", "early_stop", "rule"},
    "gate.decided": {"candidate_score", "rule"},
}
Event = tuple[str, dict[str, Any]]


def _events(db: Path) -> list[Event]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, payload FROM events ORDER BY seq").fetchall()
    return [(t, without_call_ids(json.loads(p))) for t, p in rows]


def _run(cli: Cli, db: Path, *extra: str) -> list[Event]:
    # the demo config as it ships (step buffer, slow update and meta skill on), small sizes
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "n", *SMALL, *extra).code == 0
    res = cli("run", "--db", str(db))
    assert res.code == 0, res.err
    res = cli("replay", "--db", str(db), "--verify", "--json")
    assert res.code == 0 and res.json()["verified"] is True, res.out
    return _events(db)


def _selection(events: list[Event]) -> list[str]:
    return [
        json.dumps(p, sort_keys=True)
        for t, p in events
        if t == "rollout.scored" and p["phase"] == "selection"
    ]


def _stopped(events: list[Event]) -> set[tuple[str, int]]:
    """(kind, step) of every evaluation that stopped early."""
    return {
        (p.get("kind", "step"), p["step"])
        for t, p in events
        if t in ("candidate.evaluated", "update.gated") and p.get("early_stop")
    }


def _comparable(events: list[Event], stopped: set[tuple[str, int]]) -> list[Event]:
    """The stream without selection rollouts and the fields that record a stop."""
    out = []
    for t, p in events:
        if t == "rollout.scored" and p["phase"] == "selection":
            continue
        if t == "run.created":
            p = {**p, "config": {**p["config"], "evaluation": {}}}
        if t in STOP_FIELDS and (p.get("kind", "step"), p["step"]) in stopped:
            p = {k: v for k, v in p.items() if k not in STOP_FIELDS[t]}
        out.append((t, p))
    return out


def _differences(early: list[Event], full: list[Event]) -> list[str]:
    """What differs beyond what early reject may change (empty: nothing)."""
    stopped = _stopped(early)
    problems = []
    a, b = _comparable(early, stopped), _comparable(full, stopped)
    for k, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            problems.append(f"event {k}: {x[0]} / {y[0]}")
    if len(a) != len(b):
        problems.append(f"{len(a)} events against {len(b)}")
    # every selection rollout paid with early reject is one the full pass paid too; what it did
    # not pay for are rollouts of the skills it stopped
    paid, all_ = _selection(early), _selection(full)
    if not set(paid) <= set(all_):
        problems.append("a selection rollout the full pass does not have")
    stopped_skills = {
        p["skill_hash"]
        for t, p in early
        if t in ("candidate.evaluated", "update.gated") and p.get("early_stop")
    }
    unpaid = [json.loads(r) for r in set(all_) - set(paid)]
    if any(r["skill_hash"] not in stopped_skills for r in unpaid):
        problems.append("an unpaid rollout of a skill that did not stop")
    return problems


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[list[Event], list[Event]]]:
    from tests.conftest import invoke as cli

    d = tmp_path_factory.mktemp("neutral")
    out = {}
    for seed in SEEDS:
        seeded = sets(f"train.seed={seed}")
        early = _run(cli, d / f"early{seed}.db", *seeded)  # the default
        full = _run(cli, d / f"full{seed}.db", *seeded, *sets("evaluation.early_reject=false"))
        out[seed] = (early, full)
    return out


def test_early_reject_is_on_by_default_and_stops_some_gates(
    runs: dict[int, tuple[list[Event], list[Event]]],
) -> None:
    for early, full in runs.values():
        created = early[0][1]
        assert created["config"]["evaluation"]["early_reject"] is True
        assert created["config"]["optimizer"]["use_step_buffer"] is True
        assert not _stopped(full)
    stopped = [seed for seed, (early, _) in runs.items() if _stopped(early)]
    assert len(stopped) >= 2, stopped  # else the comparison below would prove nothing
    early, full = runs[stopped[0]]
    assert len(_selection(early)) < len(_selection(full))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_same_run_but_the_rollouts_not_paid_for(
    runs: dict[int, tuple[list[Event], list[Event]]], seed: int
) -> None:
    early, full = runs[seed]
    assert _differences(early, full) == []

    def verdicts(events: list[Event]) -> list[tuple[str, int, str]]:
        return [
            (t, p["step"], p["action"]) for t, p in events if t in ("gate.decided", "update.gated")
        ]

    assert verdicts(early) == verdicts(full)


def test_before_version_4_the_step_buffer_made_the_runs_diverge(cli: Cli, tmp_path: Path) -> None:
    # seed 1 stops a candidate early in epoch 1; version 3's step buffer showed its partial
    # score ("at most ..."), so a later reflection prompt, and then the run, differed
    seed, v3 = sets("train.seed=1"), sets("config_version=3")
    early = _run(cli, tmp_path / "early.db", *seed, *v3, *sets("evaluation.early_reject=true"))
    full = _run(cli, tmp_path / "full.db", *seed, *v3)
    assert _stopped(early) and not _stopped(full)
    assert full[0][1]["config"]["evaluation"]["early_reject"] is False  # version 3's default
    problems = _differences(early, full)
    assert problems and any("reflection.proposed" in p for p in problems), problems
