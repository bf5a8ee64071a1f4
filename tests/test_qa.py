"""The qa environment: its metrics, its data checks, its shipped set, and training runs on it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from skillopt.adapters.environments.qa import (
    HOUSE_KEYS,
    QAEnvironment,
    exact_match,
    fail_reason,
    normalize,
    score,
    shipped_data,
    token_f1,
)
from skillopt.adapters.environments.splits import read_ratio_split
from skillopt.adapters.models.offline import OfflineModel
from skillopt.adapters.protocol import AdapterError, ChatRequest, Completion, DataSource
from tests.conftest import ROOT, Cli

EXAMPLE = ROOT / "examples" / "qa.yaml"
INITIAL = (ROOT / "skills" / "qa" / "initial.md").read_text("utf-8")
SPLITS = ("train", "selection", "test")


# -- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Eiffel Tower!", "eiffel tower"),
        ("  A  cat and AN owl,  the end. ", "cat and owl end"),
        ("Curie, Marie.", "curie marie"),
        ("1987-06-14", "19870614"),
        ("\u201cQuoted\u201d \u2014 text\u2026", "quoted text"),  # Unicode punctuation too
        ("theatre, another", "theatre another"),  # articles are whole words only
        ("$1,250", "1250"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_token_f1_and_exact_match() -> None:
    assert token_f1("Marie Curie", "Curie, Marie") == 1.0  # same words: F1 ignores order
    assert not exact_match("Marie Curie", ["Curie, Marie"])  # ... exact match does not
    assert token_f1("148 metres", "148") == pytest.approx(2 / 3)
    assert token_f1("the 148", "148") == 1.0
    assert token_f1("nothing alike", "148") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "x") == 0.0
    assert token_f1("a a b", "a b b") == pytest.approx(2 / 3)  # counts, not sets
    assert exact_match(
        "sheffield united kingdom", ["Sheffield, England", "Sheffield, United Kingdom"]
    )


def test_scores_take_the_best_answer() -> None:
    answers = ["Lyon, France", "Lyon"]
    assert score("Lyon", answers) == (1.0, 1.0)
    assert score("lyon france.", answers) == (1.0, 1.0)
    assert score("Lyon in France", answers) == (0.0, 0.8)
    assert score("Paris", answers) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("got", "soft", "category"),
    [
        ("", 0.0, "no_answer: place: no words in the reply, expected 'Lyon, France'"),
        ("The.", 0.0, "no_answer: place:"),
        ("France, Lyon", 1.0, "wrong_format: place: got 'France, Lyon'"),
        ("Lyon", 0.667, "partial_answer: place: got 'Lyon', expected 'Lyon, France' (F1 0.67)"),
        ("Paris", 0.0, "wrong_answer: place: got 'Paris', expected 'Lyon, France'"),
    ],
)
def test_fail_reasons_start_with_a_stable_category(got: str, soft: float, category: str) -> None:
    assert fail_reason(got, ["Lyon, France"], "place", soft).startswith(category)


class Fixed:
    """A model that answers every request with one text."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text
        self.requests: list[ChatRequest] = []

    def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        return Completion(self.text, self.name, 10, 2)


def test_a_rollout_is_a_function_of_the_answer() -> None:
    env = QAEnvironment({})
    item = next(i for i in env.items("selection") if i.task_type == "person")
    model = Fixed("  Halvorsen, Ingrid \n")
    first = env.rollout(item, INITIAL, model)
    assert (first.hard, first.soft, first.fail_reason) == (1.0, 1.0, "")
    assert env.rollout(item, INITIAL, model) == first
    request = model.requests[0]
    assert request.system == INITIAL + "\n\nAnswer with the answer only."
    assert request.messages[0].content.startswith("Context: Captain Ingrid Halvorsen")
    assert request.messages[0].content.endswith("\n\nQuestion: Who commanded the Calder Rose?")
    wrong = env.rollout(item, INITIAL, Fixed("Ingrid Halvorsen"))
    assert (wrong.hard, wrong.soft) == (0.0, 1.0)
    assert wrong.fail_reason.startswith("wrong_format: person:")
    assert {"expected", "got", "rule", "rule_pattern", "decoy", "decoy_pattern"} <= set(
        wrong.feedback
    )
    plain = QAEnvironment({"instruction": ""}).rollout(item, INITIAL, model)
    assert plain == first and model.requests[-1].system == INITIAL


# -- the shipped set ------------------------------------------------------------------------------


def test_the_shipped_set_needs_a_rule_per_task_type_the_initial_skill_lacks() -> None:
    env = QAEnvironment({})
    sizes = {s: len(env.items(s)) for s in SPLITS}
    assert sizes == {"train": 24, "selection": 18, "test": 24}
    types = env.task_types()
    assert len(types) == 6
    for split in SPLITS:  # every task type in every split
        assert {i.task_type for i in env.items(split)} == set(types)
    target = OfflineModel("target", "t", {"base_slip": 0.0})
    rules = {i.task_type: i.data["house"]["rule"] for i in env.items("train")}
    for split in SPLITS:
        assert all(env.rollout(i, INITIAL, target).hard == 0 for i in env.items(split))
    for task_type, rule in rules.items():  # one rule fixes exactly its own task type
        skill = f"{INITIAL}\n- {rule}\n"
        for item in env.items("selection"):
            hard = env.rollout(item, skill, target).hard
            assert hard == (1.0 if item.task_type == task_type else 0.0), (task_type, item.id)
    decoys = "".join(f"\n- {i.data['house']['decoy']}" for i in env.items("train"))
    assert all(env.rollout(i, INITIAL + decoys, target).hard == 0 for i in env.items("test"))


def test_the_shipped_manifest_is_recorded_by_name_not_by_path() -> None:
    manifest = QAEnvironment({}).split_manifest()
    assert manifest["split_dir"] == "shipped:skills/qa/data"
    assert manifest["counts"] == {"train": 24, "selection": 18, "test": 24}
    assert str(ROOT) not in json.dumps(manifest)
    assert shipped_data().manifest == manifest


def test_rows_without_house_rules_and_without_context(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    rows = [
        {"id": 1, "question": "Capital of France?", "answers": ["Paris", "paris, france"]},
        {"id": 2, "question": "2+2?", "answer": 4, "task_type": "math"},
        {
            "id": 3,
            "question": "Colour of the sky?",
            "answer": "blue",
            "context": None,
            "task_type": None,
        },
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = QAEnvironment({}, DataSource(data_path=str(data), split_ratio=(1, 1, 1)))
    items = {i.id: i for s in SPLITS for i in env.items(s)}
    assert items["1"].prompt == "Question: Capital of France?"
    assert [items[k].task_type for k in "123"] == ["qa", "math", "qa"]
    assert items["2"].data["answers"] == ["4"]
    target = OfflineModel("target", "t", {"base_slip": 0.0})
    result = env.rollout(items["1"], "Be brief.", target)  # no house rule: the facts are known
    assert (result.hard, result.feedback) == (
        1.0,
        {"expected": "Paris", "got": "Paris", "answers": ["Paris", "paris, france"]},
    )


# -- bad rows: one line, naming the file and the row, exit 2 at init -----------------------------

GOOD = {"id": "q1", "question": "Who?", "answer": "Ada"}
HOUSE = {
    "rule": "Give names in upper case.",
    "rule_pattern": "upper case",
    "decoy": "Give names in lower case.",
    "decoy_pattern": "lower case",
    "plain": "Ada",
    "decoy_answer": "ada",
}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "q2", "answer": "x"}, "missing required field 'question'"),
        ({"id": "q2", "question": "  ", "answer": "x"}, "'question' is empty"),
        ({"id": "q2", "question": "Why?"}, "missing required field 'answer' (or 'answers')"),
        ({"id": "q2", "question": "Why?", "answers": []}, "'answers' must be a non-empty list"),
        (
            {"id": "q2", "question": "Why?", "answers": ["ok", True]},
            "'answers[1]' must be a string",
        ),
        ({"id": "q2", "question": "Why?", "answer": "The!"}, "answer 'The!' has no words after"),
        (
            {"id": "q2", "question": "Why?", "answer": "x", "context": 3},
            "'context' must be a string",
        ),
        ({"id": "q2", "question": "Why?", "answer": "x", "task_type": ""}, "'task_type' must be a"),
        ({"question": "Why?", "answer": "x"}, "missing required field 'id'"),
        ({"id": "q1", "question": "Why?", "answer": "x"}, "duplicate id 'q1'"),
        ({**GOOD, "id": "q2", "house": "rule"}, "'house' must be an object"),
        ({**GOOD, "id": "q2", "house": {**HOUSE, "plain": None}}, "'house.plain' must be a string"),
        ({**GOOD, "id": "q2", "house": {**HOUSE, "hint": "x"}}, "house.hint: unknown key"),
        (
            {**GOOD, "id": "q2", "house": {k: v for k, v in HOUSE.items() if k != "decoy_answer"}},
            "house: missing required field 'decoy_answer'",
        ),
        (
            {**GOOD, "id": "q2", "house": {**HOUSE, "rule_pattern": "upper ("}},
            "house.rule_pattern: bad regular expression",
        ),
        (
            {**GOOD, "id": "q2", "house": {**HOUSE, "rule_pattern": "capitals"}},
            "house.rule_pattern does not match house.rule",
        ),
        (
            {**GOOD, "id": "q2", "house": {**HOUSE, "decoy_pattern": "case"}},
            "house.decoy_pattern also matches house.rule",
        ),
    ],
)
def test_bad_rows_exit_2_naming_file_and_row(
    cli: Cli, tmp_path: Path, row: dict[str, Any], message: str
) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(row) + "\n")
    db = str(tmp_path / "r.db")
    res = cli("init", str(EXAMPLE), "--db", db, "--set", f"env.data_path={data}")
    assert res.code == 2
    assert res.err.startswith(f"error: {data} line 3: {message}"), res.err
    assert len(res.err.strip().splitlines()) == 1
    assert not Path(db).exists()  # nothing recorded


def test_one_house_rule_per_task_type(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "qa.json"
    other = {**HOUSE, "rule": "Give names in title case.", "rule_pattern": "title case"}
    rows = [{**GOOD, "house": HOUSE}, {**GOOD, "id": "q2", "house": other}]
    data.write_text(json.dumps(rows, indent=1))
    res = cli(
        "init", str(EXAMPLE), "--db", str(tmp_path / "r.db"), "--set", f"env.data_path={data}"
    )
    assert res.code == 2
    assert f"{data} row 2 (line " in res.err
    assert "): house: task_type 'qa' has another rule in an earlier row" in res.err


def test_bad_split_dir_and_missing_data(cli: Cli, tmp_path: Path) -> None:
    root = tmp_path / "splits"
    for name in ("train", "val", "holdout"):
        (root / name).mkdir(parents=True)
        (root / name / "items.json").write_text(json.dumps([{**GOOD, "id": name}]))
    res = cli(
        "init", str(EXAMPLE), "--db", str(tmp_path / "r.db"), "--set", f"env.split_dir={root}"
    )
    assert res.code == 2 and f"{root / 'holdout'}: unknown split directory 'holdout'" in res.err
    res = cli(
        "init", str(EXAMPLE), "--db", str(tmp_path / "r.db"), "--set", "env.data_path=nope.jsonl"
    )
    assert res.code == 2 and "env.data_path:" in res.err and "nope.jsonl not found" in res.err


# -- training runs through the real CLI ----------------------------------------------------------


def events(cli: Cli, db: str, type_: str) -> list[dict[str, Any]]:
    return [e["payload"] for e in cli("events", "--db", db, "--type", type_, "--json").json()]


def rescore(db: str) -> int:
    """Score every recorded rollout again from the target's journaled answer: same scores."""
    env = QAEnvironment({})
    items = {split: {i.id: i for i in env.items(split)} for split in SPLITS}
    with sqlite3.connect(db) as conn:
        texts = dict(conn.execute("SELECT hash, text FROM blobs"))
        replies = dict(conn.execute("SELECT id, response_blob FROM llm_calls"))
        rows = conn.execute("SELECT payload FROM events WHERE type = 'rollout.scored'").fetchall()
    checked = 0
    for (payload,) in rows:
        e = json.loads(payload)
        if e["phase"] not in items:
            continue
        (call_id,) = e["call_ids"]
        result = env.rollout(
            items[e["phase"]][e["item_id"]], texts[e["skill_hash"]], Fixed(texts[replies[call_id]])
        )
        again = (result.hard, result.soft, result.fail_reason, dict(result.feedback))
        assert again == (e["hard"], e["soft"], e["fail_reason"], e["feedback"]), e["item_id"]
        assert hashlib.sha256(result.trajectory.encode()).hexdigest() == e["trajectory_hash"]
        checked += 1
    return checked


def test_training_on_the_shipped_set_learns_the_house_formats(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "qa.db")
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "qa").code == 0
    res = cli("run", "--db", db)
    assert res.code == 0, res.err
    report = cli("report", "--db", db, "--json").json()
    assert report["baseline"]["hard"] == 0.0
    assert report["final"]["best_score"] >= 0.8
    tests = report["final"]["test"]
    assert tests["initial"]["hard"] == 0.0 and tests["best"]["hard"] >= 0.8
    assert set(tests["best"]["buckets"]) == {
        "date", "number", "person", "list", "place", "yesno", "overall",
    }  # fmt: skip
    actions = [s["action"] for s in report["steps"]]
    assert actions[0] == "accept_new_best" and len(actions) == 6
    assert {"reject", "skip_no_patches"} & set(actions)  # the gate had something to refuse
    verified = cli("replay", "--db", db, "--verify", "--json").json()
    assert verified["verified"] is True and verified["checks"]["gate_verdicts"] >= 5
    (loaded,) = events(cli, db, "dataset.loaded")
    assert loaded["source"]["split_dir"] == "shipped:skills/qa/data"
    assert loaded["source"]["counts"] == {"train": 24, "selection": 18, "test": 24}
    assert rescore(db) > 200


def test_a_ratio_split_is_materialized_and_recorded(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "archive.jsonl"
    rows = [row for split in SPLITS for row in shipped_data().rows[split]]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    db = str(tmp_path / "ratio.db")
    sets = ["env.data_path=" + str(data), "env.split_ratio=2:1:1", "env.split_seed=9"]
    sets += ["train.num_epochs=1", "train.batch_size=11"]
    args = [a for s in sets for a in ("--set", s)]
    assert cli("init", str(EXAMPLE), "--db", db, *args).code == 0
    assert cli("run", "--db", db).code == 0
    (loaded,) = events(cli, db, "dataset.loaded")
    source = loaded["source"]
    assert {
        k: source[k] for k in ("split_mode", "source_data_path", "split_ratio", "split_seed")
    } == {
        "split_mode": "ratio",
        "source_data_path": str(data),
        "split_ratio": [2.0, 1.0, 1.0],
        "split_seed": 9,
    }
    assert source["counts"] == {"train": 33, "selection": 17, "test": 16}
    expected = read_ratio_split(data, (2, 1, 1), 9).rows
    for split in SPLITS:  # the ids per split are in the ledger, in the order the run used them
        assert loaded[split] == [r["id"] for r in expected[split]]
    report = cli("report", "--db", db, "--json").json()
    assert report["final"]["best_score"] > report["baseline"]["gate_score"]
    assert cli("replay", "--db", db, "--verify").code == 0
    # The file changes under a run that has not finished: the run refuses to go on.
    data.write_text(data.read_text().replace("1987-06-14", "1987-06-15"))
    db2 = str(tmp_path / "second.db")
    assert cli("init", str(EXAMPLE), "--db", db2, *args).code == 0
    assert cli("run", "--db", db2, "--max-stages", "2").code == 0
    data.write_text(data.read_text().replace("1987-06-15", "1987-06-16"))
    res = cli("run", "--db", db2)
    assert res.code == 2 and "changed since this run started" in res.err
    data.write_text(data.read_text().replace('"answer": "1987-06-16"', '"answer": ""'))
    res = cli("run", "--db", db2)
    assert res.code == 2 and f"{data} line 1: 'answer' is empty" in res.err


def test_the_qa_environment_refuses_unknown_options() -> None:
    with pytest.raises(AdapterError, match="env.options.shots: unknown option"):
        QAEnvironment({"shots": 3})
    with pytest.raises(AdapterError, match="env.options.max_tokens: must be >= 1"):
        QAEnvironment({"max_tokens": 0})
    assert set(HOUSE_KEYS) == {
        "rule",
        "rule_pattern",
        "decoy",
        "decoy_pattern",
        "plain",
        "decoy_answer",
    }
