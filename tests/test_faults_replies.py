"""Bad model output, served over the loopback OpenAI-compatible server (tests/fakes.py) to the
real SDK: an empty reply, prose only, truncated JSON, JSON of the wrong shape, 10 MB of text,
a body that is not UTF-8 (asked again like any damaged body; a clear error once every attempt
got one). Each ends as a re-ask, an explicit unusable-reply record in the ledger, a retried
attempt in the call journal, or a clear one-line error; never a traceback and never a silent
skip. (Transport faults, a huge target reply and non-model bodies are in
test_providers.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, SMALL, Cli
from tests.fakes import FakeProvider, Fault
from tests.test_providers import KEY, roles

# dataset, baseline, epoch plan, train rollout, reflection plan, reflect: the first reflection
UNTIL_REFLECT = ["--max-stages", "6"]
SERIAL = ["--set", "train.workers=1", "--set", "gradient.workers=1"]

CORPUS = {
    "empty": "",
    "prose only": "I looked at the failures; the skill should state the date format more clearly.",
    "truncated JSON": '```json\n{"batch_size": 4, "failure_summary": [], "patch": {"reasoning": "x", "ed',
    "wrong shape": json.dumps({"edits": "append a rule", "patch": ["not", "an", "object"]}),
    "wrong types": json.dumps(
        {"batch_size": "four", "patch": {"reasoning": 3, "edits": [{"op": "teleport"}]}}
    ),
    "10 MB of text": "All good. " * 1_048_576,
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("SKILLOPT_TEST_KEY", KEY)
    provider = FakeProvider({"train": 12, "selection": 12, "test": 12})
    yield provider
    provider.close()


def _start(cli: Cli, fake: FakeProvider, tmp_path: Path, *extra: str) -> str:
    db = str(tmp_path / "bad.db")
    args = [*SMALL, *roles("openai", f"{fake.url}/v1", *extra), *SERIAL]
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "bad", *args).code == 0
    return db


def _proposals(cli: Cli, db: str) -> list[dict[str, Any]]:
    rows = cli("events", "--db", db, "--type", "reflection.proposed", "--json").json()
    return [r["payload"] for r in rows]


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_bad_optimizer_reply_is_re_asked(
    cli: Cli, fake: FakeProvider, tmp_path: Path, name: str
) -> None:
    db = _start(cli, fake, tmp_path)
    fake.faults.append(Fault(text=CORPUS[name], model="m-optimizer"))
    res = cli("run", "--db", db, *UNTIL_REFLECT)
    assert res.code == 0, res.err
    proposals = _proposals(cli, db)
    plan = cli("events", "--db", db, "--type", "reflection.planned", "--json").json()
    assert len(proposals) == len(plan[0]["payload"]["minibatches"])  # none skipped
    first = proposals[0]
    assert first["reask"] is not None, first  # the unusable reply was re-asked, once
    assert first["ok"] is True and first["error"] == ""
    assert all(p["reask"] is None for p in proposals[1:])
    replies = [c for c in cli("calls", "--db", db, "--json").json() if c["role"] == "optimizer"]
    assert [c["status"] for c in replies] == ["ok"] * (len(proposals) + 1)
    reply = cli("blob", first["call"]["response_hash"], "--db", db).out
    assert reply == CORPUS[name]  # the unusable reply itself is kept, as evidence
    assert cli("replay", "--db", db, "--verify").code == 0


def test_two_unusable_replies_are_recorded_as_unusable(
    cli: Cli, fake: FakeProvider, tmp_path: Path
) -> None:
    db = _start(cli, fake, tmp_path)
    fake.faults.extend(
        [
            Fault(text="", model="m-optimizer"),
            Fault(text=CORPUS["wrong shape"], model="m-optimizer"),
        ]
    )
    assert cli("run", "--db", db, *UNTIL_REFLECT).code == 0
    first = _proposals(cli, db)[0]
    assert first["ok"] is False and first["edits"] == [] and first["reask"] is not None
    assert "after a re-ask" in first["error"]
    assert cli("run", "--db", db, "--max-stages", "3").code == 0  # merge, select, update: on
    assert cli("replay", "--db", db, "--verify").code == 0


def _openai_body_with(content: bytes, model: str) -> bytes:
    body = FakeProvider.openai_body({"model": model}, "@@CONTENT@@")
    return json.dumps(body).encode().replace(b"@@CONTENT@@", content)


RETRY_FAST = ["--set", "models.ROLE.max_attempts=2", "--set", "models.ROLE.retry_base_s=0.01"]


@pytest.mark.parametrize("model", ["m-target", "m-optimizer"])
def test_a_body_that_is_not_utf8_is_asked_again(
    cli: Cli, fake: FakeProvider, tmp_path: Path, model: str
) -> None:
    db = _start(cli, fake, tmp_path, *RETRY_FAST)
    fake.faults.append(Fault(body=_openai_body_with(b"caf\xe9 \xff\xfe \xc3(", model), model=model))
    res = cli("run", "--db", db, *UNTIL_REFLECT)
    assert res.code == 0, res.err
    journal = cli("calls", "--db", db, "--json").json()
    failed = [c for c in journal if c["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["role"] == model.removeprefix("m-")  # kept, numbered
    assert "can't decode byte 0xe9" in failed[0]["error"]
    assert cli("events", "--db", db, "--type", "stage.failed", "--json").json() == []
    assert cli("replay", "--db", db, "--verify").code == 0


@pytest.mark.parametrize(("model", "stage"), [("m-target", "baseline"), ("m-optimizer", "reflect")])
def test_a_body_that_stays_not_utf8_is_a_clear_error_and_the_run_resumes(
    cli: Cli, fake: FakeProvider, tmp_path: Path, model: str, stage: str
) -> None:
    db = _start(cli, fake, tmp_path, *RETRY_FAST)
    bad = Fault(body=_openai_body_with(b"caf\xe9 \xff\xfe \xc3(", model), model=model)
    fake.faults.extend([bad, bad])  # every attempt of one call
    res = cli("run", "--db", db)
    assert res.code == 1
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"failed: stage {stage} failed"), res.err
    assert f"model '{model}'" in lines[0] and "UnicodeDecodeError" in lines[0]
    assert "gave up after 2 attempts" in lines[0]
    failed = cli("events", "--db", db, "--type", "stage.failed", "--json").json()
    assert [f["payload"]["stage"] for f in failed] == [stage]  # recorded, not skipped
    journal = cli("calls", "--db", db, "--json").json()
    assert [c["status"] for c in journal].count("failed") == 2
    resumed = cli("run", "--db", db, *UNTIL_REFLECT)  # the server answers again: it resumes
    assert resumed.code == 0, resumed.err
    assert cli("replay", "--db", db, "--verify").code == 0
