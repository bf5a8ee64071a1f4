"""The judge: a third model role (`models.judge`) behind `judge` scorers of the task
environment, journaled like every call, in cost tables and budgets; an unusable judge reply is
re-asked once and then an explicit scorer error; a request of another role is refused."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from skillopt.adapters.environments.task import TaskEnvironment
from skillopt.adapters.models.offline import OfflineModel
from skillopt.adapters.protocol import (
    ChatRequest,
    Completion,
    DataSource,
    Message,
    ModelCallError,
)
from skillopt.commands.journal import JournaledModel, LedgerCalls
from skillopt.ledger.ledger import Ledger
from tests.conftest import Cli, event_rows

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "examples" / "support" / "support.yaml"
SMALLER = ["--set", "train.num_epochs=1", "--set", "env.split_sizes=12:24:6"]


def test_the_support_example_learns_with_a_judge(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "support.db")
    assert cli("init", str(SUPPORT), "--db", db).code == 0
    assert cli("run", "--db", db).code == 0
    report = cli("report", "--db", db, "--json").json()
    assert report["final"]["best_score"] > report["baseline"]["gate_score"]
    assert cli("replay", "--db", db, "--verify").code == 0
    calls = cli("calls", "--db", db, "--json").json()
    roles = {c["role"] for c in calls}
    assert roles == {"target", "optimizer", "judge"}
    status = cli("status", "--db", db, "--json").json()
    judge = status["by_role"]["judge"]
    assert judge["calls"] > 0 and judge["tokens"] > 0
    assert status["tokens"] == sum(r["tokens"] for r in status["by_role"].values())
    assert {"judge:selection", "judge:train"} <= set(report["tokens"])
    assert "| judge:selection |" in cli("report", "--db", db, "--md").out


def test_judge_tokens_count_against_the_budget_and_resume_pays_nothing_twice(
    cli: Cli, tmp_path: Path
) -> None:
    whole, pieces = str(tmp_path / "whole.db"), str(tmp_path / "pieces.db")
    for db in (whole, pieces):
        assert cli("init", str(SUPPORT), "--db", db, "--name", "s", *SMALLER).code == 0
    assert cli("run", "--db", whole).code == 0
    while not cli("status", "--db", pieces, "--json").json()["done"]:
        assert cli("run", "--db", pieces, "--max-stages", "3").code == 0
    assert event_rows(Path(pieces)) == event_rows(Path(whole))

    def judge_calls(db: str) -> int:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM llm_calls WHERE role='judge'").fetchone()[0]

    assert judge_calls(pieces) == judge_calls(whole) > 0
    capped = str(tmp_path / "capped.db")
    target_only = cli("status", "--db", whole, "--json").json()["by_role"]["target"]["tokens"]
    cap = ["--set", f"budget.max_tokens={target_only}"]
    assert cli("init", str(SUPPORT), "--db", capped, *SMALLER, *cap).code == 0
    res = cli("run", "--db", capped)
    assert res.code == 1 and "budget exhausted" in res.err  # the judge's tokens count too


def test_a_judge_scorer_needs_a_judge_model_and_a_rubric(cli: Cli, tmp_path: Path) -> None:
    text = SUPPORT.read_text("utf-8")
    for name in ("skill.md", "tickets.jsonl"):
        (tmp_path / name).write_text((SUPPORT.parent / name).read_text("utf-8"))
    no_judge = tmp_path / "no_judge.yaml"
    no_judge.write_text(text.replace("  judge: {backend: offline, model: offline-judge}\n", ""))
    res = cli("init", str(no_judge), "--db", str(tmp_path / "x.db"))
    assert res.code == 2 and "has a judge scorer: set models.judge" in res.err, res.err
    no_rubric = tmp_path / "no_rubric.yaml"
    no_rubric.write_text(text.replace("        rubric: |", "        other: |"))
    res = cli("init", str(no_rubric), "--db", str(tmp_path / "x.db"))
    assert res.code == 2 and "env.options.scorers[3] (judge): needs `rubric`" in res.err, res.err
    assert not (tmp_path / "x.db").exists()  # nothing is created before the config is good


class Scripted:
    """A chat model that answers from a script (a test double of the protocol, no SDK)."""

    name = "scripted"

    def __init__(self, judge_replies: list[str]) -> None:
        self.judge_replies = list(judge_replies)
        self.requests: list[ChatRequest] = []

    def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        if request.role == "target":
            return Completion("You can return it within 30 days from delivery.", "t", 10, 5)
        return Completion(self.judge_replies.pop(0), "j", 20, 4)


def _env(tmp_path: Path) -> TaskEnvironment:
    rows = [{"q": f"return {i}?", "a": "30 days from delivery"} for i in range(6)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    options: Mapping[str, Any] = {
        "fields": {"input": "q", "expected": "a"},
        "scorers": [{"type": "judge", "rubric": "Expected: {expected}", "required": True}],
    }
    return TaskEnvironment(options, DataSource(data_path=str(tmp_path / "d.jsonl")))


def test_an_unusable_judge_reply_is_re_asked_then_a_scorer_error(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert env.roles == ("target", "judge")
    item = env.items("train")[0]
    good = '{"score": 0.9, "pass": true, "reason": "states the window"}'
    judge = Scripted(["I think it is fine.", good])
    result = env.rollout(item, "skill", Scripted([]), judge=judge)
    assert (result.hard, result.soft) == (1.0, 0.9)
    assert result.judge_tokens == (40, 8, 0)  # both calls counted
    assert "no JSON object" in judge.requests[1].messages[-1].content  # the re-ask says why
    assert judge.requests[0].json_schema is not None and judge.requests[0].role == "judge"

    bad = Scripted(["prose", '{"score": 2, "pass": true, "reason": "x"}'])
    result = env.rollout(item, "skill", Scripted([]), judge=bad)
    assert result.hard == 0.0
    assert result.fail_reason.startswith("judge: judge reply unusable: no JSON object")
    assert "after a re-ask: score must be a number in [0, 1]" in result.fail_reason


def test_a_request_of_another_role_is_refused(tmp_path: Path) -> None:
    ledger = Ledger.open(str(tmp_path / "j.db"), create=True)
    target = OfflineModel("target", "t", {})
    model = JournaledModel(
        target, LedgerCalls(ledger), "r1", "target", 0, "rollout", "u", lambda: "t"
    )
    request = ChatRequest("optimizer", "s", (Message("user", "judge this"),), "judge", {})
    with pytest.raises(ModelCallError, match="'optimizer' request was made through the 'target'"):
        model.complete(request)
    ledger.close()


def test_a_judge_whose_replies_are_all_unusable_stops_the_run(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "j.db")
    broken = ["--set", "models.judge.options.unusable_rate=1.0"]
    sizes = ["--set", "train.num_epochs=1", "--set", "env.split_sizes=24:24:6"]  # 2 steps
    assert cli("init", str(SUPPORT), "--db", db, *sizes, *broken).code == 0
    res = cli("run", "--db", db)
    assert res.code == 1 and len(res.err.strip().splitlines()) == 1
    assert "2 steps in a row had no usable judge reply" in res.err
    assert "role judge, backend offline, model offline-judge" in res.err
    assert "models.judge.options.structured_output: false" in res.err
    scored = cli("events", "--db", db, "--type", "rollout.scored", "--json").json()
    assert all("judge reply unusable" in e["payload"]["fail_reason"] for e in scored)
    assert cli("replay", "--db", db, "--verify").code == 0
    last = cli("status", "--db", db, "--json").json()["events"]
    fix = ["--set", "models.judge.options.unusable_rate=0.0"]
    assert cli("fork", "--db", db, "--at", str(last), "--name", "fixed", *fix).code == 0
    assert cli("run", "--db", db, "--run", "fixed").code == 0
