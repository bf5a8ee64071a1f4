"""The closed_loop environment: outcomes, scores, repairs, determinism, its task set, the offline
model playing the target, and a training run through the real CLI."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from skillopt.adapters.environments.closed_loop import (
    HOUSE_RULES,
    ClosedLoopEnvironment,
    expected_text,
    extract_program,
    program_for,
    shipped_tasks,
    soft_score,
)
from skillopt.adapters.models.offline import OfflineModel
from skillopt.adapters.protocol import AdapterError, ChatRequest, Completion, DataSource, Item
from skillopt.adapters.registry import env_names, make_environment
from tests.conftest import ROOT, Cli

EXAMPLE = ROOT / "examples" / "closed_loop.yaml"
INITIAL = (ROOT / "skills" / "closed_loop" / "initial.md").read_text()
FEEDBACK_KEYS = {"expected", "got", "rule", "rule_pattern", "decoy", "decoy_pattern"}


class Scripted:
    """A target that answers from a script, one reply per call, and keeps the requests."""

    name = "scripted"

    def __init__(self, replies: Sequence[str]) -> None:
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []

    def complete(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        text = self.replies[min(len(self.requests), len(self.replies)) - 1]
        return Completion(text, self.name, input_tokens=100 + len(self.requests), output_tokens=7)


def task(expected: str = "42", task_type: str = "arithmetic") -> Item:
    data = {"description": "Print the answer.", "expected_output": expected}
    return Item("t-1", task_type, "Task: Print the answer.", data)


def env(**options: Any) -> ClosedLoopEnvironment:
    return ClosedLoopEnvironment(options)


CRASH = "```python\nraise ValueError('no answer yet')\n```"
WRONG = "```python\nprint(41)\n```"
RIGHT = "Here it is:\n\n```python\nprint(42)\n```\n"


# -- pure pieces ----------------------------------------------------------------------------------


def test_program_extraction() -> None:
    assert extract_program(RIGHT) == "print(42)"
    assert extract_program("print(1)\n") == "print(1)"
    assert extract_program("```\nprint(2)\n```") == "print(2)"
    two = "```text\noutput: 3\n```\nand\n```py\nprint(3)\n```"
    assert extract_program(two) == "print(3)"  # the block tagged with the language wins
    assert extract_program("```PYTHON\nPRINT(4)\n```") == "PRINT(4)"
    assert extract_program("```python\nprint(5)\n") == "print(5)"  # cut off before the fence
    assert extract_program("  \n") == ""
    assert extract_program("```python\n```") == ""
    assert extract_program("```js\nconsole.log(1)\n```", "javascript") == "console.log(1)"


def test_expected_output_honours_newline_escapes() -> None:
    assert expected_text("a\\nb\n") == "a\nb"
    assert expected_text("  7 \n") == "7"


def test_soft_score_formula() -> None:
    assert soft_score(["working"], [0.0], 3) == 1.0
    assert soft_score(["failed", "working"], [0.0, 0.0], 3) == round(0.5 + 0.5 * 2 / 3, 6)
    assert soft_score(["partial", "partial", "working"], [0.5, 0.5, 0.0], 3) == round(
        0.5 + 0.5 / 3, 6
    )
    assert soft_score(["partial", "failed"], [0.5, 0.0], 2) == round(0.1 + 0.3 * 0.5, 6)
    assert soft_score(["failed", "partial"], [0.0, 0.0], 2) == 0.1  # ran: above failed
    assert soft_score(["failed", "failed"], [0.0, 0.0], 2) == 0.0
    later = soft_score(["partial"] * 4 + ["working"], [0.9] * 5, 5)
    assert 0.5 < later < soft_score(["working"], [0.0], 5)
    assert soft_score(["partial"] * 5, [1.0] * 5, 5) < later


# -- outcomes, repairs, scores ----------------------------------------------------------------------


def test_failed_then_partial_then_working() -> None:
    model = Scripted([CRASH, WRONG, RIGHT])
    result = env(retry_cap=3).rollout(task(), "SKILL", model)
    assert (result.hard, result.soft) == (1.0, round(0.5 + 0.5 / 3, 6))
    assert result.fail_reason == ""
    attempts = result.feedback["attempts"]
    assert [(a["kind"], a["outcome"], a["category"]) for a in attempts] == [
        ("generate", "failed", "runtime_error"),
        ("repair", "partial", "wrong_output"),
        ("repair", "working", ""),
    ]
    assert [a["exit_code"] for a in attempts] == [1, 0, 0]
    first, second, third = (r.messages[-1].content for r in model.requests)
    assert first == "Task: Print the answer."
    assert "raise ValueError('no answer yet')" in second  # the previous program
    assert "ValueError: no answer yet" in second  # and its error
    assert "It printed:\n41" in third
    assert all(r.system.startswith("SKILL") and r.purpose == "rollout" for r in model.requests)
    assert result.input_tokens == 101 + 102 + 103 and result.output_tokens == 21
    economics = {
        k: result.feedback[k] for k in ("outcome", "attempts_total", "attempts_to_success")
    }
    assert economics == {"outcome": "working", "attempts_total": 3, "attempts_to_success": 3}
    assert result.feedback["repair_tokens_by_turn"] == [7, 7]
    for text in ("=== attempt 1 (generate): failed (runtime_error", "print(41)", "FINAL: working"):
        assert text in result.trajectory


def test_working_at_once_stops_there() -> None:
    model = Scripted([RIGHT, CRASH])
    result = env().rollout(task(), "SKILL", model)
    assert (result.hard, result.soft, len(model.requests)) == (1.0, 1.0, 1)
    assert result.feedback["repair_tokens_by_turn"] == []


def test_partial_until_the_cap() -> None:
    model = Scripted([WRONG])
    result = env(retry_cap=4).rollout(task(), "SKILL", model)
    assert len(model.requests) == 4
    assert result.hard == 0.0
    assert result.soft == round(0.1 + 0.3 * 0.5, 6)  # '41' vs '42'
    assert result.fail_reason.startswith("wrong_output: arithmetic: printed '41', expected '42'")
    assert result.fail_reason.endswith("(after 4 attempts)")
    assert result.trajectory.count("program: identical to attempt 1") == 3
    assert result.feedback["got"] == "41" and result.feedback["expected"] == "42"


def test_no_program_and_runtime_error_and_timeout_reasons() -> None:
    result = env(retry_cap=2).rollout(task(), "SKILL", Scripted(["", "   "]))
    assert result.fail_reason.startswith("no_program: arithmetic:")
    assert "=== attempt 2 (repair): failed (no_program: the reply holds no program)" in (
        result.trajectory
    )
    assert result.soft == 0.0

    result = env(retry_cap=1).rollout(task(), "SKILL", Scripted([CRASH]))
    assert result.fail_reason == (
        "runtime_error: arithmetic: ValueError: no answer yet (exit code 1) (after 1 attempt)"
    )

    sleeper = "```python\nimport time\ntime.sleep(600)\n```"
    result = env(retry_cap=1, timeout_s=1.0).rollout(task(), "SKILL", Scripted([sleeper]))
    assert result.fail_reason.startswith("timeout: arithmetic: wall-clock limit reached")
    assert result.hard == result.soft == 0.0


def test_expected_output_with_newlines() -> None:
    multi = "```python\nprint('a')\nprint('b')\n```"
    result = env().rollout(task(expected="a\\nb"), "SKILL", Scripted([multi]))
    assert result.hard == 1.0


def test_same_answers_give_identical_results() -> None:
    """Scores, trajectory and feedback depend only on the model's answers: not on timing, on
    whether a program ran before (the result cache), or on the temporary paths."""
    script = [CRASH, WRONG, RIGHT]
    a = env(retry_cap=3).rollout(task(), "S", Scripted(script))
    shared = env(retry_cap=3)
    b = shared.rollout(task(), "S", Scripted(script))
    c = shared.rollout(task(), "S", Scripted(script))  # every program is in the cache now
    d = env(retry_cap=3, rerun_identical=True).rollout(task(), "S", Scripted(script))
    assert a == b == c == d
    assert "skillopt-sandbox-" not in a.trajectory
    assert "wall" not in json.dumps(dict(a.feedback))


def test_solve_exposes_per_attempt_economics_for_a_benchmark() -> None:
    episode = env(retry_cap=3).solve(task(), "S", Scripted([CRASH, RIGHT]))
    assert episode.outcome == "working" and episode.attempts_to_success == 2
    assert [a.kind for a in episode.attempts] == ["generate", "repair"]
    assert all(a.wall_time_s >= 0 for a in episode.attempts)
    assert episode.economics()["generation_tokens"] == 14


# -- options and rows ---------------------------------------------------------------------------


def test_registered_and_options_checked() -> None:
    assert "closed_loop" in env_names()
    assert make_environment("closed_loop", {}).name == "closed_loop"
    with pytest.raises(AdapterError, match=r"env.options.retries: unknown option"):
        env(retries=2)
    with pytest.raises(AdapterError, match=r"env.options.retry_cap: must be >= 1"):
        env(retry_cap=0)
    with pytest.raises(AdapterError, match=r"env.options.command: interpreter 'no-such-lang'"):
        env(language="nosuch", command=["no-such-lang", "{file}"], extension=".ns")
    with pytest.raises(AdapterError, match=r"env.options.command: required for language"):
        env(language="ruby")
    with pytest.raises(AdapterError, match=r"env.options.extension"):
        env(extension="js")
    with pytest.raises(AdapterError, match=r"env.options.task_types: unknown task type"):
        env(task_types="poetry")
    assert env(task_types="string").task_types() == ["string"]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_another_language_by_configuration() -> None:
    js = env(language="javascript", command=["node", "{file}"], extension=".js", memory_mb=0)
    reply = "```javascript\nconsole.log(6 * 7)\n```"
    assert js.rollout(task(), "SKILL", Scripted([reply])).hard == 1.0


def write_split_dir(root: Path, rows: list[dict[str, Any]]) -> Path:
    """The same rows in each split, their ids prefixed by the split (ids are unique overall)."""
    for split in ("train", "val", "test"):
        (root / split).mkdir(parents=True)
        named = [{**r, "id": f"{split}-{r['id']}"} if "id" in r else r for r in rows]
        (root / split / "items.json").write_text(json.dumps(named))
    return root


def test_rows_from_a_split_dir(tmp_path: Path) -> None:
    row = {"id": "a", "task_type": "t", "description": "Print 1.", "expected_output": "1"}
    root = write_split_dir(tmp_path / "ok", [row])
    items = ClosedLoopEnvironment({}, DataSource(split_dir=str(root))).items("selection")
    assert [(i.id, i.task_type, i.prompt) for i in items] == [("val-a", "t", "Task: Print 1.")]
    bad = write_split_dir(tmp_path / "bad", [row, {"id": "b", "task_type": "t"}])
    with pytest.raises(AdapterError) as info:
        ClosedLoopEnvironment({}, DataSource(split_dir=str(bad)))
    message = str(info.value)
    assert "train/items.json row 2" in message
    assert "'description'" in message and "'expected_output'" in message
    other = write_split_dir(tmp_path / "lang", [{**row, "language": "ruby"}])
    with pytest.raises(AdapterError, match=r"language 'ruby', but env.options.language"):
        ClosedLoopEnvironment({}, DataSource(split_dir=str(other)))


def test_rows_from_one_data_file(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    rows = [
        {"id": f"x{i}", "task_type": "t", "description": f"Print {i}.", "expected_output": str(i)}
        for i in range(10)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    source = DataSource(data_path=str(path), split_ratio=(5, 3, 2), split_seed=1)
    e = ClosedLoopEnvironment({}, source)
    assert [len(e.items(s)) for s in ("train", "selection", "test")] == [5, 3, 2]
    assert e.split_manifest()["split_mode"] == "ratio"
    path.write_text(path.read_text() + json.dumps({"id": "bad", "task_type": "t"}) + "\n")
    with pytest.raises(AdapterError, match=r"tasks.jsonl line 11: missing required field"):
        ClosedLoopEnvironment({}, source)


# -- the shipped task set -------------------------------------------------------------------------


def printed(program: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(program, "<task>", "exec"), {"__name__": "__main__"})  # our own code
    return out.getvalue().strip()


def test_shipped_task_set() -> None:
    data = shipped_tasks()
    rows = [r for split in ("train", "selection", "test") for r in data.rows[split]]
    types = {r["task_type"] for r in rows}
    assert len(rows) >= 60 and len(types) >= 6 and types == set(HOUSE_RULES)
    for split in ("train", "selection", "test"):
        assert {r["task_type"] for r in data.rows[split]} == types
    manifest = json.loads((ROOT / "skills/closed_loop/tasks/split_manifest.json").read_text())
    assert manifest["counts"] == {"train": 36, "val": 18, "test": 18}
    for row in rows:
        rule = HOUSE_RULES[row["task_type"]]
        expected = expected_text(row["expected_output"])
        assert printed(program_for(row["solution"], rule.rule.printer)) == expected, row["id"]
        assert printed(program_for(row["solution"], rule.naive)) != expected, row["id"]
        assert printed(program_for(row["solution"], rule.decoy.printer)) != expected, row["id"]


def test_the_initial_skill_states_one_house_rule_and_no_decoy() -> None:
    stated = [t for t, r in HOUSE_RULES.items() if re.search(r.rule.pattern, INITIAL)]
    assert stated == ["arithmetic"]
    assert not any(re.search(r.decoy.pattern, INITIAL) for r in HOUSE_RULES.values())
    for rule in HOUSE_RULES.values():  # each pattern finds its own text and not the other's
        assert re.search(rule.rule.pattern, rule.rule.text)
        assert re.search(rule.decoy.pattern, rule.decoy.text)
        assert not re.search(rule.rule.pattern, rule.decoy.text)
        assert not re.search(rule.decoy.pattern, rule.rule.text)


# -- the offline model as the target ---------------------------------------------------------------


def test_offline_target_follows_the_rule_the_skill_states() -> None:
    e = env(retry_cap=2)
    item = next(i for i in e.items("selection") if i.task_type == "string")
    target = OfflineModel("target", "offline-target", {"base_slip": 0.0})
    naive = e.rollout(item, INITIAL, target)
    assert naive.hard == 0.0 and naive.fail_reason.startswith("wrong_output: string:")
    assert set(naive.feedback) >= FEEDBACK_KEYS
    assert naive.feedback["rule_pattern"] == HOUSE_RULES["string"].rule.pattern
    ruled = e.rollout(item, INITIAL + "\n- " + HOUSE_RULES["string"].rule.text, target)
    assert (ruled.hard, ruled.soft) == (1.0, 1.0)
    decoy = e.rollout(item, INITIAL + "\n- " + HOUSE_RULES["string"].decoy.text, target)
    assert decoy.hard == 0.0 and decoy.feedback["got"] == decoy.feedback["expected"][1:-1].upper()


def test_offline_slips_are_real_failing_programs_and_repairs_fix_them() -> None:
    """A slip garbles the program (it fails in the sandbox); the repair request is drawn again,
    so a repair usually fixes it: deterministic, seeded by the request."""
    e = env(retry_cap=3)
    target = OfflineModel("target", "offline-target", {"base_slip": 0.5})
    skill = INITIAL
    repaired = failed_first = 0
    for item in e.items("train"):
        if item.task_type != "arithmetic":
            continue
        result = e.rollout(item, skill, target)
        kinds = [(a["outcome"], a["category"]) for a in result.feedback["attempts"]]
        if kinds[0] == ("failed", "runtime_error"):
            failed_first += 1
            assert "Error" in result.trajectory  # NameError / SyntaxError of the garbled code
            if result.hard:
                repaired += 1
                assert 0.5 < result.soft < 1.0
    assert failed_first and repaired


# -- through the CLI -------------------------------------------------------------------------------

RUN = [
    "--set",
    "train.num_epochs=1",
    "--set",
    "env.options.retry_cap=2",
    "--set",
    "train.workers=2",
    "--set",
    "gradient.workers=2",
]


def test_training_run_improves_and_replays(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "cl", *RUN).code == 0
    res = cli("run", "--db", db)
    assert res.code == 0, res.err
    report = cli("report", "--db", db, "--json")
    assert report.code == 0
    data = report.json()
    initial, best = data["baseline"]["gate_score"], data["final"]["best_score"]
    assert initial == pytest.approx(3 / 18)  # only the arithmetic rule is stated
    assert best > initial
    test = data["final"]["test"]
    assert test["best"]["hard"] > test["initial"]["hard"]
    events = cli("events", "--db", db, "--type", "gate.decided", "--json").json()
    assert len(events) == len(data["steps"])
    for event in events:
        p = event["payload"]
        better = p["candidate_score"] > p["current_score"]
        assert p["action"] in (("accept_new_best", "accept") if better else ("reject",))
    verify = cli("replay", "--db", db, "--verify")
    assert verify.code == 0, verify.out + verify.err
    again = cli("report", "--db", db, "--json")
    assert again.out == report.out  # the report is a pure function of the ledger
    scored = cli("events", "--db", db, "--type", "rollout.scored", "--json").json()
    reasons = {e["payload"]["fail_reason"].split(":")[0] for e in scored}
    assert reasons <= {"", "wrong_output", "runtime_error", "timeout", "no_program"}
    assert all(set(e["payload"]["feedback"]) >= FEEDBACK_KEYS for e in scored)


def test_init_refuses_a_missing_interpreter(cli: Cli, tmp_path: Path) -> None:
    config = EXAMPLE.read_text().replace(
        "    retry_cap: 3\n",
        '    retry_cap: 3\n    language: zig\n    command: ["zig-not-installed", "run", "{file}"]\n'
        '    extension: ".zig"\n',
    )
    path = tmp_path / "zig.yaml"
    path.write_text(config.replace("../skills/", str(ROOT / "skills") + "/"))
    res = cli("init", str(path), "--db", str(tmp_path / "runs.db"))
    assert res.code == 2
    assert "env.options.command: interpreter 'zig-not-installed' not found" in res.err
