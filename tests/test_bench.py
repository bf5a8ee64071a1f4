"""`skillopt bench closed-loop` through the real CLI: the plan, every attempt in the ledger as a
run of kind bench, the seed's per-task economics in JSON and markdown, several configs, a skill
given on the command line, resume without paying twice, bad input, and the schema upgrade."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from skillopt.adapters.environments.closed_loop import HOUSE_RULES
from skillopt.adapters.models.offline import OfflineModel
from skillopt.ledger.database import head_revision
from tests.conftest import EXAMPLE as SIM_EXAMPLE
from tests.conftest import ROOT, SMALL, Cli, copy_into_old_schema, event_rows

CLOSED_LOOP = ROOT / "examples" / "closed_loop.yaml"
INITIAL = (ROOT / "skills" / "closed_loop" / "initial.md").read_text()
# From the test split: the initial skill states the arithmetic rule only.
ARITHMETIC = ["arithmetic-circle-area", "arithmetic-price-with-tax"]
STRING = ["string-sorted-letters", "string-camel-to-snake"]
FOUR = ARITHMETIC + STRING


def tasks(*ids: str) -> list[str]:
    return [x for i in ids for x in ("--task", i)]


def bench(cli: Cli, db: Path, *args: str) -> Any:
    res = cli("bench", "closed-loop", "--db", str(db), *args)
    assert res.code == 0, res.err
    return res


def calls(db: Path) -> list[tuple[str, int, str]]:
    """The call journal: (unit, index, status) of every row."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT unit, call_index, status FROM llm_calls ORDER BY unit, call_index, id"
        ).fetchall()


def one_line_error(res: Any, *needles: str) -> None:
    assert res.code == 2, res.out + res.err
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_dry_run_lists_tasks_and_creates_no_run(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    res = bench(cli, db, "--dry-run", "--split", "test", "--limit", "3")
    assert res.out.startswith("3 task(s):")
    assert "[arithmetic-circle-area] (arithmetic)" in res.out
    assert "expected: '28.27'" in res.out
    listed = bench(cli, db, "--dry-run", "--json", *tasks(*FOUR)).json()
    assert [r["id"] for r in listed] == FOUR  # the plan keeps the task set's order
    assert listed[3]["expected_output"] == '"parse_http_response"'
    assert not db.exists()  # no ledger, no run, no model


def test_bench_records_every_attempt_and_reports_the_economics(cli: Cli, tmp_path: Path) -> None:
    db, out = tmp_path / "runs.db", tmp_path / "out"
    res = bench(cli, db, *tasks(*FOUR), "--name", "b1", "--json")
    data = res.json()
    assert data["summary"] == "2/4 runs succeeded" and data["complete"]
    assert [r["task"] for r in data["results"]] == FOUR
    by_task = {r["task"]: r for r in data["results"]}
    for task in ARITHMETIC:
        r = by_task[task]
        assert (r["final_outcome"], r["attempts_to_success"], r["attempts_total"]) == (
            "working",
            1,
            1,
        )
        assert r["repair_tokens_by_turn"] == [] and r["success_rate"] == 1.0
    for task in STRING:  # the quoting rule is not in the skill: wrong output up to the cap
        r = by_task[task]
        assert (r["final_outcome"], r["attempts_to_success"], r["attempts_total"]) == (
            "partial",
            None,
            3,
        )
        assert r["fail_reason"].startswith("wrong_output: string:")
    for r in data["results"]:
        outs = [a["output_tokens"] for a in r["attempts"]]
        assert r["generation_tokens"] == sum(outs) > 0
        assert r["input_tokens"] == sum(a["input_tokens"] for a in r["attempts"]) > 0
        assert r["repair_tokens_by_turn"] == outs[1:]
        assert r["wall_time_s"] is not None and r["wall_time_s"] >= 0
        assert [a["kind"] for a in r["attempts"]][:2] == ["generate", "repair"][: len(outs)]
    config = data["configs"][0]
    assert (config["model"], config["retry_cap"], config["succeeded"]) == ("offline-target", 3, 2)
    assert config["generation_tokens"] == sum(r["generation_tokens"] for r in data["results"])

    # The ledger: a run of kind bench, one event per task, every attempt's texts by hash.
    runs = cli("runs", "--db", str(db), "--json").json()
    assert [(r["run"], r["kind"], r["phase"]) for r in runs] == [
        ("b1", "bench", "bench done: 2/4 runs succeeded")
    ]
    events = cli("events", "--db", str(db), "--run", "b1", "--json").json()
    assert [e["type"] for e in events] == ["bench.started"] + ["bench.task"] * 4 + [
        "bench.completed"
    ]
    started = events[0]["payload"]
    assert (
        started["task_ids"] == FOUR
        and started["arms"][0]["skill_hash"] == data["configs"][0]["skill_hash"]
    )
    attempts = [a for e in events[1:5] for a in e["payload"]["attempts"]]
    assert len(attempts) == 8 == len(calls(db))  # one journaled target call per attempt
    assert "wall" not in json.dumps([e["payload"] for e in events])  # measured: not hashed
    with sqlite3.connect(db) as conn:
        program = conn.execute(
            "SELECT text FROM blobs WHERE hash = ?", (attempts[0]["program_hash"],)
        ).fetchone()[0]
        assert "print(" in program
        assert conn.execute("SELECT count(*) FROM timings").fetchone() == (4,)
    assert cli("verify", "--db", str(db)).code == 0
    for command in (("status",), ("run",), ("step",), ("report", "--md"), ("replay",)):
        refused = cli(*command, "--db", str(db), "--run", "b1")
        one_line_error(refused, "b1 is a bench run, not a training run")
    one_line_error(cli("status", "--db", str(db)), "no training run")

    # Markdown and JSON files; the same command again calls nothing and reports the same.
    again = bench(cli, db, *tasks(*FOUR), "--name", "b1", "-o", str(out))
    assert again.out.strip() == "2/4 runs succeeded"
    assert json.loads((out / "b1.json").read_text()) == data
    md = (out / "b1.md").read_text()
    assert "**2/4 runs succeeded**" in md
    assert "| task | type | outcome | attempts to success | attempts | gen tokens |" in md
    assert "| string-sorted-letters | string | **partial** | - | 3 |" in md
    assert "## Comparison" not in md  # one config
    assert len(calls(db)) == 8
    assert bench(cli, db, *tasks(*FOUR), "--name", "b1").out == md


def test_identical_benches_write_identical_events(cli: Cli, tmp_path: Path) -> None:
    """Wall time lives in the timings table, so the hashed events do not depend on it."""
    a, b = tmp_path / "a.db", tmp_path / "b.db"
    bench(cli, a, *tasks(*ARITHMETIC, STRING[0]))
    bench(cli, b, *tasks(*ARITHMETIC, STRING[0]))
    assert event_rows(a) == event_rows(b)
    (name,) = [r["run"] for r in cli("runs", "--db", str(a), "--json").json()]
    assert name.startswith("bench-")  # derived from the plan: the same command resumes it


def test_task_runs_side_by_side_record_the_same_bench(cli: Cli, tmp_path: Path) -> None:
    """--workers N runs tasks at once; the driver appends them in the plan's order."""
    sloppy = _sloppy_config(tmp_path)
    args = ["--config", str(CLOSED_LOOP), "--config", str(sloppy), *tasks(*FOUR)]
    one, four = tmp_path / "one.db", tmp_path / "four.db"
    bench(cli, one, *args)
    res = bench(cli, four, *args, "--workers", "4")
    assert event_rows(one) == event_rows(four)
    assert calls(one) == calls(four)
    progress = [line for line in res.err.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == [f"[{n}/8" for n in range(1, 9)]
    for bad in (["--workers", "0"], ["--executor", "spark"]):
        one_line_error(cli("bench", "closed-loop", "--db", str(one), *args, *bad), bad[0])


def _sloppy_config(tmp_path: Path) -> Path:
    sloppy = tmp_path / "sloppy.yaml"
    text = CLOSED_LOOP.read_text().replace("../skills/", f"{ROOT}/skills/")
    text = text.replace(
        "    model: offline-target\n",
        "    model: offline-sloppy\n    options:\n      base_slip: 0.9\n",
    )
    assert "offline-sloppy" in text
    sloppy.write_text(text)
    return sloppy


def test_two_configs_compare_two_models(cli: Cli, tmp_path: Path) -> None:
    sloppy = _sloppy_config(tmp_path)
    db = tmp_path / "runs.db"
    args = ["--config", str(CLOSED_LOOP), "--config", str(sloppy), *tasks(*ARITHMETIC)]
    data = bench(cli, db, *args, "--retry-cap", "2", "--json").json()
    assert [(c["label"], c["model"], c["retry_cap"]) for c in data["configs"]] == [
        ("closed_loop", "offline-target", 2),
        ("sloppy", "offline-sloppy", 2),
    ]
    assert [(r["task"], r["config"]) for r in data["results"]] == [
        (ARITHMETIC[0], "closed_loop"),
        (ARITHMETIC[0], "sloppy"),
        (ARITHMETIC[1], "closed_loop"),
        (ARITHMETIC[1], "sloppy"),
    ]
    careful, slipping = data["configs"]
    assert careful["summary"] == "2/2 runs succeeded" and careful["attempts_total"] == 2
    # The sloppy target garbles its programs: they fail in the sandbox and need repairs.
    assert slipping["attempts_total"] > 2 and slipping["first_attempt"] < 2
    assert data["summary"] == f"{2 + slipping['succeeded']}/4 runs succeeded"
    units = {unit for unit, _, _ in calls(db)}
    assert units == {f"{arm}:{task}" for arm in (0, 1) for task in ARITHMETIC}
    md = bench(cli, db, *args, "--retry-cap", "2").out
    assert "## Comparison" in md
    assert "## closed_loop: offline offline-target" in md
    assert "## sloppy: offline offline-sloppy" in md
    assert "| task | closed_loop | sloppy |" in md


def test_the_skill_option_changes_the_outcome(cli: Cli, tmp_path: Path) -> None:
    ruled = tmp_path / "best.md"
    ruled.write_text(INITIAL + "".join(f"- {r.rule.text}\n" for r in HOUSE_RULES.values()))
    db = tmp_path / "runs.db"
    initial = bench(cli, db, *tasks(*FOUR), "--json").json()
    better = bench(cli, db, *tasks(*FOUR), "--skill", str(ruled), "--json").json()
    assert initial["summary"] == "2/4 runs succeeded"
    assert better["summary"] == "4/4 runs succeeded"
    assert better["configs"][0]["skill_hash"] != initial["configs"][0]["skill_hash"]
    assert initial["run"] != better["run"]  # another plan, another bench run
    assert [r["kind"] for r in cli("runs", "--db", str(db), "--json").json()] == ["bench"] * 2


def test_a_limited_bench_resumes_without_calling_again(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    first = bench(cli, db, *tasks(*FOUR), "--name", "r", "--limit", "2", "--json").json()
    assert (first["complete"], first["runs"], first["planned_runs"]) == (False, 2, 4)
    assert first["summary"] == "2/2 runs succeeded"
    before = calls(db)
    assert {unit for unit, _, _ in before} == {f"0:{t}" for t in ARITHMETIC}
    done = bench(cli, db, *tasks(*FOUR), "--name", "r", "--json").json()
    assert done["complete"] and done["summary"] == "2/4 runs succeeded"
    after = calls(db)
    assert after[: len(before)] == before  # ordered by unit: the arithmetic units come first
    assert all(not unit.startswith("0:arith") for unit, _, _ in after[len(before) :])
    reference = tmp_path / "reference.db"
    bench(cli, reference, *tasks(*FOUR), "--name", "r")
    assert event_rows(db) == event_rows(reference)  # resumed = uninterrupted, hash for hash


def test_an_interrupted_task_reuses_its_journaled_calls(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed in the middle of a task (after its first attempt's call was journaled): the
    resumed bench asks the model only for the calls it had not made."""
    asked: list[str] = []
    stop_at: list[int] = [4]  # the 4th model call: string-sorted-letters' 2nd attempt
    real = OfflineModel.complete

    def complete(self: OfflineModel, request: Any) -> Any:
        asked.append(request.messages[-1].content)
        if len(asked) == stop_at[0]:
            raise KeyboardInterrupt
        return real(self, request)

    monkeypatch.setattr(OfflineModel, "complete", complete)
    db = tmp_path / "runs.db"
    args = ["bench", "closed-loop", "--db", str(db), "--name", "k", *tasks(*ARITHMETIC, STRING[0])]
    res = cli(*args)
    assert res.code == 130 and "interrupted" in res.err
    events = cli("events", "--db", str(db), "--run", "k", "--json").json()
    assert [e["type"] for e in events] == ["bench.started", "bench.task", "bench.task"]
    journaled = calls(db)
    assert [c for c in journaled if c[0] == f"0:{STRING[0]}"] == [(f"0:{STRING[0]}", 0, "ok")]
    stop_at[0] = 0
    asked.clear()
    res = cli(*args, "--json")
    assert res.code == 0, res.err
    assert res.json()["summary"] == "2/3 runs succeeded"
    assert len(asked) == 2  # attempts 2 and 3 of the interrupted task; attempt 1 was journaled
    assert "Task:" in asked[0] and "did not work" in asked[0]
    reference = tmp_path / "reference.db"
    assert cli(*args[:3], str(reference), *args[4:]).code == 0
    assert event_rows(db) == event_rows(reference)


def test_a_tasks_file_keeps_its_order(cli: Cli, tmp_path: Path) -> None:
    rows = [
        {
            "id": "z-sum",
            "task_type": "arithmetic",
            "description": "Print 2 + 3.",
            "expected_output": "5.00",
            "solution": "result = 2 + 3",  # what the offline target computes
        },
        {"id": "a-hello", "task_type": "misc", "description": "Print hi.", "expected_output": "hi"},
        {
            "id": "m-lines",
            "task_type": "misc",
            "description": "Print a and b on two lines.",
            "expected_output": "a\\nb",
            "language": "python",
        },
    ]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = tmp_path / "runs.db"
    listed = bench(cli, db, "--tasks", str(path), "--dry-run", "--json").json()
    assert [r["id"] for r in listed] == ["z-sum", "a-hello", "m-lines"]
    data = bench(cli, db, "--tasks", str(path), "--retry-cap", "1", "--json").json()
    assert [r["task"] for r in data["results"]] == ["z-sum", "a-hello", "m-lines"]
    assert data["summary"] == "1/3 runs succeeded"
    assert data["source"]["tasks_file"] == str(path)
    assert data["results"][2]["expected_output"] == "a\nb"
    # The offline target has no reference solution for these: its program exits with an error.
    assert data["results"][1]["fail_reason"].startswith("runtime_error: misc:")


def test_bad_input_is_one_line_and_exit_2(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "runs.db"

    def run(*args: str) -> Any:
        return cli("bench", "closed-loop", "--db", str(db), *args)

    one_line_error(run("--tasks", str(tmp_path / "missing.json")), "--tasks", "not found")
    bad_rows = tmp_path / "bad.jsonl"
    bad_rows.write_text(json.dumps({"id": "x", "task_type": "t"}) + "\n")
    one_line_error(run("--tasks", str(bad_rows)), "bad.jsonl line 1", "'description'")
    one_line_error(run("--task", "no-such-task"), "--task no-such-task: unknown task id")
    one_line_error(run("--config", str(SIM_EXAMPLE)), "env.name is 'sim'")
    broken = tmp_path / "broken.yaml"
    broken.write_text(CLOSED_LOOP.read_text().replace("  retry_cap: 3", "  retry_caps: 3"))
    one_line_error(run("--config", str(broken)), "broken.yaml", "env.skill_init", "not found")
    broken.write_text(broken.read_text().replace("../skills/", f"{ROOT}/skills/"))
    one_line_error(run("--config", str(broken)), "broken.yaml", "retry_caps: unknown option")
    one_line_error(run("--config", str(tmp_path / "nope.yaml")), "nope.yaml not found")
    one_line_error(run("--skill", str(tmp_path / "nope.md")), "--skill file", "not found")
    one_line_error(run("--limit", "0"), "--limit 0")
    one_line_error(run("--retry-cap", "0"), "--retry-cap 0")
    one_line_error(run("--split", "dev"), "--split dev: unknown split")
    assert not db.exists()
    assert cli("init", str(CLOSED_LOOP), "--db", str(db), "--name", "t").code == 0
    one_line_error(run("--name", "t", *tasks(ARITHMETIC[0])), "'t' is a train run")
    bench(cli, db, "--name", "b", *tasks(ARITHMETIC[0]))
    one_line_error(
        run("--name", "b", *tasks(*ARITHMETIC)), "started with another plan", "task(s) then"
    )
    runs = cli("runs", "--db", str(db), "--json").json()
    assert [(r["run"], r["kind"]) for r in runs] == [("t", "train"), ("b", "bench")]
    status = cli("status", "--db", str(db), "--json")  # the most recent training run
    assert status.code == 0 and status.json()["run"] == "t"
    assert status.out == cli("status", "--db", str(db), "--json", "--fold").out


def test_a_ledger_of_the_previous_schema_upgrades_and_takes_a_bench(
    cli: Cli, tmp_path: Path
) -> None:
    source_db = tmp_path / "source.db"
    assert cli("init", str(SIM_EXAMPLE), "--db", str(source_db), "--name", "old", *SMALL).code == 0
    assert cli("run", "--db", str(source_db), "--max-stages", "3").code == 0
    old = tmp_path / "old.db"
    # the schema before bench runs: no kind, no timings
    copy_into_old_schema(source_db, old, "0002_llm_calls")
    with sqlite3.connect(old) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
        assert "kind" not in columns
    before = event_rows(old)

    runs = cli("runs", "--db", str(old), "--json")  # opening upgrades it
    assert runs.code == 0, runs.err
    assert [(r["run"], r["kind"]) for r in runs.json()] == [("old", "train")]
    with sqlite3.connect(old) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (
            head_revision(),
        )
        assert conn.execute("SELECT kind FROM runs").fetchall() == [("train",)]
        assert conn.execute("SELECT count(*) FROM timings").fetchone() == (0,)
    assert event_rows(old) == before  # nothing recorded was touched
    assert cli("replay", "--db", str(old), "--verify").code == 0
    bench(cli, old, "--name", "b", *tasks(ARITHMETIC[0]))
    assert cli("run", "--db", str(old), "--max-stages", "1").code == 0  # the training run
    assert cli("verify", "--db", str(old)).code == 0
    kinds = [(r["run"], r["kind"]) for r in cli("runs", "--db", str(old), "--json").json()]
    assert kinds == [("old", "train"), ("b", "bench")]
