"""Recorded rollouts reused (evaluation.reuse_rollouts, on from config_version 4): the epoch-end
review takes a train step's rollout of the same skill and item instead of paying again."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, SMALL, Cli, event_rows, sets, without_call_ids
from tests.test_crash_points import _resume, _truncate
from tests.test_forgery import _forge

Row = tuple[int, dict[str, Any]]


def _rollouts(db: Path, phase: str) -> list[Row]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT seq, payload FROM events WHERE type = 'rollout.scored' "
            "AND json_extract(payload, '$.phase') = ? ORDER BY seq",
            (phase,),
        ).fetchall()
    return [(seq, json.loads(p)) for seq, p in rows]


def _journal_units(db: Path, stage: str) -> list[str]:
    """The units the call journal holds for a stage: every model call made, one row each."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT unit FROM llm_calls WHERE stage = ?", (stage,)).fetchall()
    return sorted(r[0] for r in rows)


def _unit(p: dict[str, Any]) -> str:
    return f"{p['item_id']}@{p['skill_hash'][:12]}"  # as commands/stages/rollouts.py names it


def _run(cli: Cli, db: Path, *extra: str) -> Path:
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "r", *SMALL, *extra).code == 0
    res = cli("run", "--db", str(db))
    assert res.code == 0, res.err
    return db


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tests.conftest import invoke as cli

    d = tmp_path_factory.mktemp("reuse")
    # the demo config as it ships: slow update and meta skill on, so epoch 2 ends in a review
    return _run(cli, d / "on.db"), _run(cli, d / "off.db", *sets("evaluation.reuse_rollouts=false"))


def test_the_review_reuses_train_rollouts_of_the_same_skill_and_pays_for_the_rest(
    cli: Cli, runs: tuple[Path, Path]
) -> None:
    on, off = runs
    review = _rollouts(on, "review")
    reused = [p for _, p in review if "reuse_of" in p]
    fresh = [p for _, p in review if "reuse_of" not in p]
    assert reused and fresh
    train = {
        (p["phase"], p["step"], p["batch"], p["skill_hash"], p["item_id"]): p
        for _, p in _rollouts(on, "train")
    }
    for p in reused:
        ref = p["reuse_of"]
        original = train[(ref["phase"], ref["step"], ref["batch"], p["skill_hash"], p["item_id"])]
        result = ("hard", "soft", "fail_reason", "task_type", "trajectory_hash", "feedback")
        assert {k: p[k] for k in result} == {k: original[k] for k in result}
        assert p["call_ids"] == [] and p["tokens"] == {"input": 0, "output": 0, "cached": 0}
    # the journal holds a call for every fresh review rollout and none for a reuse
    assert _journal_units(on, "rollout:review") == sorted(_unit(p) for p in fresh)
    for db in runs:
        res = cli("replay", "--db", str(db), "--verify", "--json")
        assert res.code == 0 and res.json()["verified"] is True, res.out


def test_with_reuse_off_every_review_rollout_is_paid(runs: tuple[Path, Path]) -> None:
    on, off = runs
    review = [p for _, p in _rollouts(off, "review")]
    assert review and not any("reuse_of" in p for p in review)
    assert _journal_units(off, "rollout:review") == sorted(_unit(p) for p in review)
    # the offline target is a function of skill and item: the same results (reuses are
    # recorded first, so in another order), and the same run
    keys = ("skill_hash", "item_id", "hard", "soft", "fail_reason", "trajectory_hash")

    def results(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return sorted(tuple(p[k] for k in keys) for p in rows)

    assert results([p for _, p in _rollouts(on, "review")]) == results(review)

    def decisions(db: Path) -> list[Any]:
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "SELECT payload FROM events WHERE type IN ('gate.decided', 'slow_update.done', "
                "'meta_skill.done', 'run.completed') ORDER BY seq"
            ).fetchall()
        return [without_call_ids(json.loads(p)) for (p,) in rows]

    assert decisions(on) == decisions(off)


def test_a_run_recorded_before_version_4_reads_reuse_as_off(cli: Cli, tmp_path: Path) -> None:
    db = _run(cli, tmp_path / "v3.db", *sets("config_version=3"))
    with sqlite3.connect(db) as conn:
        (config,) = conn.execute("SELECT payload FROM events WHERE seq = 1").fetchone()
    evaluation = json.loads(config)["config"]["evaluation"]
    assert (evaluation["reuse_rollouts"], evaluation["early_reject"]) == (False, False)
    review = _rollouts(db, "review")
    assert review and not any("reuse_of" in p for _, p in review)


def _nth_reuse(db: Path) -> int:
    """The index among rollout.scored events of the first reuse."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT payload FROM events WHERE type = 'rollout.scored' ORDER BY seq"
        ).fetchall()
    return next(k for k, (p,) in enumerate(rows) if "reuse_of" in json.loads(p))


def _other_step(p: dict[str, Any]) -> dict[str, Any]:
    return {**p, "reuse_of": {**p["reuse_of"], "step": p["reuse_of"]["step"] + 1}}


FORGED = [
    # a pointer at a rollout that is not this skill's on this item
    ("pointer", _other_step, "reuse_of"),
    # a result that is not the recorded one
    ("result", lambda p: {**p, "hard": 1.0 - p["hard"]}, "a reuse: hard"),
    # the recorded rollout was due for reuse, and a fresh one was paid (and recorded) instead
    ("paid", lambda p: {k: v for k, v in p.items() if k != "reuse_of"}, "paid for again"),
]


@pytest.mark.parametrize(("name", "change", "named"), FORGED, ids=[f[0] for f in FORGED])
def test_a_forged_reuse_is_refused(
    cli: Cli, tmp_path: Path, runs: tuple[Path, Path], name: str, change: Any, named: str
) -> None:
    db = tmp_path / "forged.db"
    shutil.copy(runs[0], db)
    seq = _forge(db, "rollout.scored", change, _nth_reuse(db))
    res = cli("replay", "--db", str(db), "--verify", "--json")
    assert res.code == 1, res.out
    problem = res.json()["problem"]
    assert problem["seq"] == seq and named in problem["message"], problem


def test_a_reuse_pointing_at_another_skills_rollout_is_refused(
    cli: Cli, tmp_path: Path, runs: tuple[Path, Path]
) -> None:
    db = tmp_path / "forged.db"
    shutil.copy(runs[0], db)
    review = _rollouts(db, "review")
    fresh = next(p for _, p in review if "reuse_of" not in p)
    other = next(
        p for _, p in _rollouts(db, "train") if p["skill_hash"] != fresh["skill_hash"]
    )  # a recorded train rollout, but of another skill
    ref = {"phase": "train", "step": other["step"], "batch": other["batch"]}
    nth = len(_rollouts_before(db, next(s for s, p in review if p is fresh)))
    seq = _forge(db, "rollout.scored", lambda p: {**p, "reuse_of": ref}, nth)
    res = cli("replay", "--db", str(db), "--verify", "--json")
    assert res.code == 1, res.out
    problem = res.json()["problem"]
    assert problem["seq"] == seq and "reuse" in problem["message"], problem


def _rollouts_before(db: Path, seq: int) -> list[int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT seq FROM events WHERE type = 'rollout.scored' AND seq < ?", (seq,)
        ).fetchall()
    return [r[0] for r in rows]


def test_a_resumed_review_never_pays_for_a_reuse(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    on = runs[0]
    expected = event_rows(on)
    review = _rollouts(on, "review")
    first = review[0][0]
    fresh = sorted(_unit(p) for _, p in review if "reuse_of" not in p)
    # a crash before the review's first event, and one after its reuses, before a fresh rollout;
    # the journal's review calls lost too, so every call the resume needs is made again
    for k in (first - 1, next(s for s, p in review if "reuse_of" not in p) - 1):
        work = tmp_path / f"work{k}.db"
        shutil.copy(on, work)
        _truncate(work, k)
        with sqlite3.connect(work) as conn:
            conn.execute("DELETE FROM llm_calls WHERE stage = 'rollout:review'")
        _resume(work)
        assert [r[1:4] for r in event_rows(work)] == [r[1:4] for r in expected], k
        assert _journal_units(work, "rollout:review") == fresh, k


def test_the_report_counts_reused_rollouts(cli: Cli, runs: tuple[Path, Path]) -> None:
    on, off = runs
    n = sum(1 for _, p in _rollouts(on, "review") if "reuse_of" in p)
    report = cli("report", "--db", str(on), "--json").json()
    assert report["reused"] == {"review": n}
    md = cli("report", "--db", str(on), "--md").out
    assert "**Reused rollouts** (a recorded rollout of the same skill" in md
    assert f"review {n}." in md
    assert "reused" not in cli("report", "--db", str(off), "--json").json()  # none: no key
    assert "Reused rollouts" not in cli("report", "--db", str(off), "--md").out


def test_the_html_report_counts_reused_rollouts_too(cli: Cli, runs: tuple[Path, Path]) -> None:
    on, off = runs
    n = sum(1 for _, p in _rollouts(on, "review") if "reuse_of" in p)
    assert "<b>Reused rollouts</b>" in cli("report", "--db", str(on), "--html").out
    assert f"review {n}.</p>" in cli("report", "--db", str(on), "--html").out
    assert "Reused rollouts" not in cli("report", "--db", str(off), "--html").out
