"""The `task` environment: your own data file (JSONL without ids, CSV with a field map,
{"data": [...]}), a prompt template, and scorers; bad scorer specs are exit 2 naming the
scorer; a scorer that raises is a scorer error on its item, never a crash or a pass."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml

from skillopt.adapters.environments import scorers as sc
from skillopt.adapters.protocol import AdapterError
from tests.conftest import Cli

QUESTIONS = [f"How long is the return window for order #{1000 + i}?" for i in range(24)]


def _rows() -> list[dict[str, Any]]:
    return [
        {"question": q, "answer": "30 days", "area": "returns" if i % 2 else "billing"}
        for i, q in enumerate(QUESTIONS)
    ]


def _project(tmp_path: Path, data_name: str, options: dict[str, Any]) -> Path:
    (tmp_path / "skill.md").write_text("# Support\n\nAnswer the customer.\n")
    config = {
        "train": {"num_epochs": 1, "batch_size": 6},
        "env": {
            "name": "task",
            "skill_init": "skill.md",
            "data_path": data_name,
            "split_ratio": "2:1:1",
            "options": options,
        },
        "models": {"target": {"backend": "offline"}, "optimizer": {"backend": "offline"}},
    }
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


OPTIONS = {
    "fields": {"input": "question", "expected": "answer", "task_type": "area"},
    "prompt": "Customer asks: {question}",
    "scorers": [{"type": "contains", "required": True}, {"type": "length", "max": 60}],
}


def _payloads(db: Path, type_: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT payload FROM events WHERE type = ? ORDER BY seq", (type_,))
        return [json.loads(p) for (p,) in rows]


def test_a_jsonl_without_ids_trains_and_verifies(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "support.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()) + "\n")
    config = _project(tmp_path, "support.jsonl", OPTIONS)
    db = tmp_path / "runs.db"
    assert cli("init", str(config), "--db", str(db), "--name", "a").code == 0
    assert cli("run", "--db", str(db)).code == 0
    assert cli("replay", "--db", str(db), "--verify").code == 0
    (loaded,) = _payloads(db, "dataset.loaded")
    ids = loaded["train"] + loaded["selection"] + loaded["test"]
    assert len(ids) == 24 and all(i.startswith("row-") for i in ids)
    assert set(loaded["task_types"]) == {"returns", "billing"}
    scored = _payloads(db, "rollout.scored")[0]
    trajectory = cli("blob", scored["trajectory_hash"], "--db", str(db)).out
    assert trajectory.startswith("USER: Customer asks: How long")
    assert "contains (contains, required, weight 1): 1.000 pass" in trajectory
    # ids come from content: a second ledger of the same file gets the same ones
    db2 = tmp_path / "again.db"
    assert cli("init", str(config), "--db", str(db2), "--name", "a").code == 0
    assert cli("step", "--db", str(db2)).code == 0
    assert _payloads(db2, "dataset.loaded")[0]["train"] == loaded["train"]


def test_csv_with_a_field_map_and_a_data_object_load(cli: Cli, tmp_path: Path) -> None:
    with (tmp_path / "support.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["ticket", "Question", "Reply"])
        writer.writeheader()
        for i, r in enumerate(_rows()):
            writer.writerow({"ticket": f"T{i}", "Question": r["question"], "Reply": r["answer"]})
    options = {
        "fields": {"input": "Question", "expected": "Reply", "id": "ticket"},
        "scorers": [{"type": "exact"}],
    }
    db = tmp_path / "runs.db"
    config = _project(tmp_path, "support.csv", options)
    assert cli("init", str(config), "--db", str(db), "--name", "csv").code == 0
    assert cli("step", "--db", str(db)).code == 0
    loaded = _payloads(db, "dataset.loaded")[0]
    assert sorted(loaded["train"] + loaded["selection"] + loaded["test"]) == sorted(
        f"T{i}" for i in range(24)
    )
    (tmp_path / "support.json").write_text(json.dumps({"data": _rows(), "version": 2}))
    config = _project(tmp_path, "support.json", OPTIONS)
    assert cli("init", str(config), "--db", str(db), "--name", "obj").code == 0
    assert cli("step", "--db", str(db), "--run", "obj").code == 0


@pytest.mark.parametrize(
    ("scorer", "named"),
    [
        ({"type": "bogus"}, "env.options.scorers[0] (bogus): unknown scorer type 'bogus'"),
        ({"type": "regex", "pattern": "("}, "env.options.scorers[0] (regex): bad regular"),
        ({"type": "python", "function": "nowhere"}, "must be module:function"),
        ({"type": "python", "function": "no_such_mod:f"}, "cannot load no_such_mod:f"),
        ({"type": "exact", "weight": -1}, "weight must be a number >= 0"),
    ],
)
def test_a_bad_scorer_is_exit_2_naming_it(
    cli: Cli, tmp_path: Path, scorer: dict[str, Any], named: str
) -> None:
    (tmp_path / "support.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()))
    config = _project(tmp_path, "support.jsonl", {**OPTIONS, "scorers": [scorer]})
    res = cli("init", str(config), "--db", str(tmp_path / "x.db"))
    assert res.code == 2 and named in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1


def test_a_python_scorer_that_raises_is_a_scorer_error_on_its_item(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_scorers.py").write_text(
        "def picky(reply, row):\n"
        "    if '1001' in row['question']:\n"
        "        raise ValueError('cannot judge this one')\n"
        "    return (1.0, 'fine') if 'days' in reply else (0.0, 'no days')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "support.jsonl").write_text("\n".join(json.dumps(r) for r in _rows()))
    scorers = [{"type": "python", "function": "my_scorers:picky", "required": True}]
    config = _project(tmp_path, "support.jsonl", {**OPTIONS, "scorers": scorers})
    db = tmp_path / "runs.db"
    assert cli("init", str(config), "--db", str(db)).code == 0
    assert cli("run", "--db", str(db)).code == 0
    scored = _payloads(db, "rollout.scored")
    broken = [s for s in scored if "scorer error: ValueError: cannot judge" in s["fail_reason"]]
    assert broken and all(s["hard"] == 0.0 for s in broken)
    assert any(s["hard"] == 1.0 for s in scored)


def test_scorers_score_as_documented() -> None:
    row = {"expected": "30 days", "n": "12.5", "sku": "A-1"}

    def score(spec: dict[str, Any], reply: str) -> sc.Outcome:
        return sc.build(spec, 0)(reply, row)

    assert score({"type": "exact"}, "  30   DAYS ").passed
    assert not score({"type": "exact", "case_sensitive": True}, "30 DAYS").passed
    assert score({"type": "exact", "strip_punctuation": True}, "30 days.").passed
    assert score({"type": "contains_any", "values": ["refund", "days"]}, "in 30 days").passed
    partial = score({"type": "contains_all", "values": ["30", "days", "receipt"]}, "30 days")
    assert (round(partial.score, 3), partial.passed) == (0.667, False)
    assert "receipt" in partial.reason
    assert score({"type": "contains", "field": "sku"}, "order a-1 shipped").passed
    assert score({"type": "regex", "pattern": r"^\d+ days$", "full_match": True}, "30 days").passed
    assert score({"type": "numeric", "field": "n", "tolerance": 0.1}, "about 12.45").passed
    assert not score({"type": "numeric", "field": "n"}, "1,000").passed
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    assert score({"type": "json", "schema": schema}, '```json\n{"ok": true}\n```').passed
    assert "schema" in score({"type": "json", "schema": schema}, '{"ok": 1}').reason
    assert score({"type": "json", "equals": {"sku": {"field": "sku"}}}, '{"sku": "A-1"}').passed
    assert not score({"type": "length", "max": 3, "unit": "words"}, "one two three four").passed
    with pytest.raises(AdapterError, match="bad JSON schema"):
        sc.build({"type": "json", "schema": {"type": "nope"}}, 0)
    missing = score({"type": "contains", "field": "nope"}, "x")
    assert missing.error and "row has no field 'nope'" in missing.reason


def test_combining_follows_required_then_threshold() -> None:
    specs = [{"type": "exact", "required": True}, {"type": "length", "max": 2, "weight": 3}]
    scorers = [sc.build(s, k) for k, s in enumerate(specs)]
    row = {"expected": "30 days"}
    outcomes = [s("30 days", row) for s in scorers]
    assert sc.combine(scorers, outcomes, 1.0) == (1.0, 0.25)  # required passes; soft weighted
    loose = [sc.build({"type": "length", "max": 2}, 0), sc.build({"type": "exact"}, 1)]
    outs = [s("30 days", row) for s in loose]
    assert sc.combine(loose, outs, 0.5) == (1.0, 0.5)
    assert sc.combine(loose, outs, 0.75) == (0.0, 0.5)
