"""Fork: a what-if run that shares the origin's prefix and continues under changed settings."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Cli, without_call_ids


def _events(db: Path, run: str) -> list[tuple[str, int, dict]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT e.type, e.version, e.payload FROM events e JOIN runs r ON r.id = e.run_id "
            "WHERE r.name = ? ORDER BY e.seq",
            (run,),
        ).fetchall()
    return [(t, v, without_call_ids(json.loads(p))) for t, v, p in rows]


@pytest.mark.parametrize("at", [1, 2, 30, 77, 150])
def test_a_fork_without_changes_reproduces_its_origin(cli: Cli, small_run: Path, at: int) -> None:
    res = cli(
        "fork",
        "--db",
        str(small_run),
        "--run",
        "small",
        "--at",
        str(at),
        "--name",
        "copy",
        "--json",
    )
    assert res.code == 0, res.err
    assert res.json()["changes"] == {}
    assert cli("run", "--db", str(small_run), "--run", "copy").code == 0
    origin, copy = _events(small_run, "small"), _events(small_run, "copy")
    assert copy[0][2]["forked_from"] == {
        "run_name": "small",
        "run_id": res.json()["forked_from"]["run_id"],
        "seq": at,
    }
    assert copy[0][2]["run_name"] == "copy"
    assert copy[1:] == origin[1:]  # every decision after the fork point is the origin's too
    assert cli("replay", "--db", str(small_run), "--run", "copy", "--verify").code == 0


def test_a_fork_with_more_epochs_and_budget_continues(cli: Cli, small_run: Path) -> None:
    at = 60
    res = cli(
        "fork",
        "--db",
        str(small_run),
        "--run",
        "small",
        "--at",
        str(at),
        "--name",
        "longer",
        "--set",
        "train.num_epochs=3",
        "--set",
        "optimizer.learning_rate=4",
    )
    assert res.code == 0, res.err
    assert "train.num_epochs: 2 -> 3" in res.out
    assert cli("run", "--db", str(small_run), "--run", "longer").code == 0
    origin, fork = _events(small_run, "small"), _events(small_run, "longer")
    assert fork[1:at] == origin[1:at]
    assert fork[at][0] == "settings.changed"
    assert fork[at][2]["changes"] == {"optimizer.learning_rate": [3, 4], "train.num_epochs": [2, 3]}
    status = cli("status", "--db", str(small_run), "--run", "longer", "--json").json()
    assert status["done"] and status["total_steps"] == 6
    budgets = [e[2]["schedule_total"] for e in fork if e[0] == "edits.selected"]
    assert budgets[-1] == 6
    assert cli("replay", "--db", str(small_run), "--run", "longer", "--verify").code == 0


@pytest.mark.parametrize(
    ("at", "setting", "message"),
    [
        (60, "env.options.train=24", "env.options.train: the prefix already used it"),
        (60, "train.batch_size=4", "train.batch_size"),
        (60, "evaluation.gate_metric=soft", "evaluation.gate_metric"),
        (110, "train.num_epochs=1", "end before the prefix's progress"),
        (140, "train.num_epochs=3", "the final evaluation has begun"),
        (999, "train.num_epochs=3", "has events 1.."),
        (60, "train.bogus=1", "train.bogus: unknown key"),
    ],
)
def test_contradicting_forks_are_refused(
    cli: Cli, small_run: Path, at: int, setting: str, message: str
) -> None:
    res = cli("fork", "--db", str(small_run), "--at", str(at), "--name", "f", "--set", setting)
    assert res.code == 2 and message in res.err, res.err
    assert [r["run"] for r in cli("runs", "--db", str(small_run), "--json").json()] == ["small"]


def test_a_finished_run_cannot_be_forked_at_its_end(cli: Cli, small_run: Path) -> None:
    last = cli("status", "--db", str(small_run), "--json").json()["events"]
    res = cli("fork", "--db", str(small_run), "--at", str(last), "--name", "f")
    assert res.code == 2 and "after run.completed" in res.err


def test_a_forged_settings_change_is_refused_by_verify(cli: Cli, small_run: Path) -> None:
    assert (
        cli(
            "fork",
            "--db",
            str(small_run),
            "--at",
            "60",
            "--name",
            "f",
            "--set",
            "train.num_epochs=3",
        ).code
        == 0
    )
    with sqlite3.connect(small_run) as conn:  # smuggle a frozen change past the recorded diff
        conn.execute("DROP TRIGGER events_no_update")
        run_id, seq, payload = conn.execute(
            "SELECT run_id, seq, payload FROM events WHERE type = 'settings.changed'"
        ).fetchone()
        body = json.loads(payload)
        body["config"]["train"]["batch_size"] = 4
        conn.execute(
            "UPDATE events SET payload = ? WHERE run_id = ? AND seq = ?",
            (json.dumps(body), run_id, seq),
        )
    res = cli("replay", "--db", str(small_run), "--run", "f", "--verify", "--json")
    assert res.code == 1 and res.json()["problem"]["seq"] == seq


def test_a_fork_of_a_run_older_than_a_mechanism_keeps_it_off() -> None:
    from skillopt.machine.config.schema import recorded_config, validate_config
    from skillopt.machine.decisions.fork import changes

    old = validate_config({"env": {"name": "sim", "skill_init": "x.md"}}).model_dump(mode="json")
    for key in ("use_step_buffer", "use_slow_update", "use_meta_skill"):
        del old["optimizer"][key]  # recorded before these keys existed
    new = recorded_config(old).model_dump(mode="json")
    assert new["optimizer"]["use_slow_update"] is False
    assert changes(old, new) == {}  # making the old meaning explicit changes nothing
    turned_on = {**new, "optimizer": {**new["optimizer"], "use_slow_update": True}}
    assert changes(old, turned_on) == {"optimizer.use_slow_update": [None, True]}
