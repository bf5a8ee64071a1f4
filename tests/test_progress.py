"""`skillopt run` says how training goes: one plain line per stage when stdout is not a
terminal (nohup, CI, notebooks), with the step, what the stage decided, the best score, the
spending and the time left; `--quiet` silences it; `--json` prints the final status only."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EXAMPLE, SMALL, Cli


def test_run_prints_one_plain_line_per_stage(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "p.db")
    prices = ["--set", "models.target.prices.input=1", "--set", "models.target.prices.output=2"]
    prices += [
        "--set",
        "models.optimizer.prices.input=3",
        "--set",
        "models.optimizer.prices.output=4",
    ]
    assert (
        cli("init", str(EXAMPLE), "--db", db, *SMALL, *prices, "--set", "budget.max_usd=5").code
        == 0
    )
    res = cli("run", "--db", db)
    assert res.code == 0
    lines = res.out.splitlines()
    gates = cli("events", "--db", db, "--type", "gate.decided", "--json").json()
    gate_lines = [line for line in lines if " gate: " in line]
    assert len(gate_lines) == len(gates) > 0
    first = gates[0]["payload"]
    assert f"step {first['step']}/4 gate: {first['action']} (candidate " in gate_lines[0]
    assert all("\x1b" not in line and "\r" not in line for line in lines)  # no control chars
    assert all("best " in line for line in lines[1:]) and "of $5.00" in lines[-1]
    assert any("ETA " in line for line in lines)
    assert lines[-1].startswith("epoch 2/2 step 4/4 complete:")

    db2 = str(tmp_path / "q.db")
    assert cli("init", str(EXAMPLE), "--db", db2, *SMALL).code == 0
    assert cli("run", "--db", db2, "--max-stages", "5", "--quiet").out == ""
    json_out = cli("run", "--db", db2, "--json")
    assert json_out.json()["done"] is True


def test_compare_puts_runs_and_a_fork_side_by_side(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    for name, seed in (("a", 1), ("b", 2)):
        args = [*SMALL, "--set", f"train.seed={seed}"]
        assert cli("init", str(EXAMPLE), "--db", db, "--name", name, *args).code == 0
        assert cli("run", "--db", db, "--run", name, "--quiet").code == 0
    fork = ["--set", "optimizer.learning_rate=1"]
    assert cli("fork", "--db", db, "--run", "a", "--at", "30", "--name", "f", *fork).code == 0
    assert cli("run", "--db", db, "--run", "f", "--quiet").code == 0
    res = cli("compare", "a", "b", "f", "--db", db, "--json")
    assert res.code == 0, res.err
    c = res.json()
    assert c["runs"] == ["a", "b", "f"]
    assert c["config_differences"]["train.seed"] == [1, 2, 1]
    assert c["config_differences"]["optimizer.learning_rate"][2] == 1
    facts = {f["run"]: f for f in c["runs_facts"]}
    assert facts["f"]["forked_from"]["run_name"] == "a" and facts["a"]["forked_from"] is None
    report_a = cli("report", "--db", db, "--run", "a", "--json").json()
    assert facts["a"]["best"] == report_a["final"]["best_score"]
    assert [row["a"] for row in c["verdicts"]] == [s["action"] for s in report_a["steps"]]
    assert set(c["accepted_only_in"]) == {"a", "b", "f"}
    md = cli("compare", "a", "f", "--db", db).out
    assert "`f` is a fork of `a`: its first 30 events are that run's" in md
    assert "| `optimizer.learning_rate` |" in md and "## Verdicts" in md
    assert cli("compare", "a", "--db", db).code == 2


def test_the_eta_comes_from_recorded_step_times(cli: Cli, tmp_path: Path) -> None:
    """A resumed run has an ETA from its first line: it reads the steps' recorded times."""
    from freezegun import freeze_time

    from skillopt.machine.reports.progress import eta_seconds

    db = str(tmp_path / "e.db")
    assert cli("init", str(EXAMPLE), "--db", db, *SMALL).code == 0
    with freeze_time("2026-01-01T00:00:00Z") as clock:
        stages = 0
        while cli("events", "--db", db, "--type", "step.completed", "--json").json() == []:
            assert cli("run", "--db", db, "--max-stages", "1", "--quiet").code == 0
            clock.tick(30)  # every stage takes 30 s of the injected clock
            stages += 1
        first = cli("run", "--db", db, "--max-stages", "1").out.splitlines()[0]
    # step 1 ran from the baseline's record to its step.completed; 3 steps are left
    began = cli("events", "--db", db, "--type", "baseline.evaluated", "--json").json()
    ended = cli("events", "--db", db, "--type", "step.completed", "--json").json()
    took = int(ended[0]["recorded_at"][14:16]) * 60 + int(ended[0]["recorded_at"][17:19])
    took -= int(began[0]["recorded_at"][14:16]) * 60 + int(began[0]["recorded_at"][17:19])
    assert 0 < took < stages * 30
    assert f"ETA {took * 3 // 60}m{took * 3 % 60:02d}s" in first, first

    times = [0.0, 60.0, 9 * 3600.0, 9 * 3600.0 + 60]
    assert eta_seconds(times, 2) == 120.0  # a night's pause is one outlier among three
    assert eta_seconds(times[:1], 2) is None and eta_seconds(times, 0) is None
