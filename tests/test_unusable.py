"""No silent run that trains nothing: unusable optimizer replies are counted per stage and
shown; a step whose reflections were all unusable is `reflection_unusable` (not no_patches);
after `optimizer.max_unusable_steps` such steps in a row the run stops with exit 1 and one line
naming the role, backend, model, the parse error and its likely cause; a fork with the fix
continues. Over loopback servers: one that ignores structured output, one that truncates."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, SMALL, Cli, count_events
from tests.fakes import FakeProvider
from tests.test_providers import KEY, roles

UNUSABLE = ["--set", "models.optimizer.options.unusable_rate=1.0"]


def test_a_run_with_no_usable_reply_stops_and_says_why(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "u.db")
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "u", *SMALL, *UNUSABLE).code == 0
    res = cli("run", "--db", db)
    assert res.code == 1 and len(res.err.strip().splitlines()) == 1
    line = res.err
    for named in (
        "2 steps in a row had no usable optimizer reply",
        "role optimizer, backend offline, model offline-optimizer",
        "no JSON object in reply",
        "ignored the structured-output request",
        "models.optimizer.options.structured_output: false",
    ):
        assert named in line, named
    status = cli("status", "--db", db, "--json").json()
    assert status["unusable"] == {"reflect": 6} and status["done"] is False
    assert status["last_failure"]["error_type"] == "UnusableReplies"
    assert "unusable" in cli("status", "--db", db).out.lower()
    actions = [s["action"] for s in cli("report", "--db", db, "--json").json()["steps"]]
    assert actions == ["skip_reflection_unusable"] * 2
    assert "**Unusable optimizer replies**" in cli("report", "--db", db, "--md").out
    events = count_events(Path(db), "stage.failed")
    assert cli("run", "--db", db).code == 1  # again: the same stop, nothing new recorded
    assert count_events(Path(db), "stage.failed") == events == 1
    assert cli("replay", "--db", db, "--verify").code == 0

    last = cli("status", "--db", db, "--json").json()["events"]
    fix = ["--set", "models.optimizer.options.unusable_rate=0.0"]
    assert cli("fork", "--db", db, "--run", "u", "--at", str(last), "--name", "f", *fix).code == 0
    assert cli("run", "--db", db, "--run", "f").code == 0
    assert cli("replay", "--db", db, "--run", "f", "--verify").code == 0


def test_zero_never_stops_and_a_mixed_step_is_not_unusable(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "z.db")
    never = ["--set", "optimizer.max_unusable_steps=0"]
    assert cli("init", str(EXAMPLE), "--db", db, *SMALL, *UNUSABLE, *never).code == 0
    assert cli("run", "--db", db).code == 0
    actions = {s["action"] for s in cli("report", "--db", db, "--json").json()["steps"]}
    assert actions == {"skip_reflection_unusable"}
    some = ["--set", "models.optimizer.options.unusable_rate=0.3"]
    db2 = str(tmp_path / "s.db")
    assert cli("init", str(EXAMPLE), "--db", db2, *SMALL, *some).code == 0
    assert cli("run", "--db", db2).code == 0
    assert "skip_reflection_unusable" not in {
        s["action"] for s in cli("report", "--db", db2, "--json").json()["steps"]
    }


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("SKILLOPT_TEST_KEY", KEY)
    provider = FakeProvider({"train": 12, "selection": 12, "test": 12})
    yield provider
    provider.close()


@pytest.mark.parametrize(
    ("backend", "mode", "cause"),
    [
        ("openai", "prose", "the server ignored the structured-output request"),
        ("anthropic", "prose", "the server ignored the structured-output request"),
        ("anthropic", "truncate", "the reply was cut at max_tokens: raise models.optimizer"),
        ("openai", "truncate", "the reply was cut at max_tokens"),
    ],
)
def test_a_server_that_cannot_answer_in_json_is_diagnosed(
    cli: Cli, server: FakeProvider, tmp_path: Path, backend: str, mode: str, cause: str
) -> None:
    server.optimizer_mode = mode
    db = str(tmp_path / "remote.db")
    args = [*SMALL, *roles(backend, server.url), "--set", "models.optimizer.max_tokens=300"]
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "r", *args).code == 0
    res = cli("run", "--db", db)
    assert res.code == 1, res.err
    assert f"backend {backend}, model m-optimizer" in res.err and cause in res.err, res.err
    assert cli("replay", "--db", db, "--verify").code == 0


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_doctor_checks_structured_output_per_role(
    cli: Cli, server: FakeProvider, tmp_path: Path, backend: str
) -> None:
    config = tmp_path / "remote.yaml"
    text = EXAMPLE.read_text().replace("../skills", str(EXAMPLE.parent.parent / "skills"))
    url = server.url + ("/v1" if backend == "openai" else "")
    remote = (
        f"    backend: {backend}\n    model: m-optimizer\n    base_url: {url}\n"
        "    api_key_env: SKILLOPT_TEST_KEY\n    max_attempts: 1\n"
    )
    text = text.replace("    backend: offline\n    model: offline-optimizer\n", remote)
    config.write_text(text)
    res = cli("doctor", str(config))
    assert res.code == 0, res.out + res.err
    assert "dataset   36 train, 24 selection, 30 test items" in res.out
    assert server.log[-2].body.get("response_format" if backend == "openai" else "tool_choice")
    server.optimizer_mode = "prose"
    res = cli("doctor", str(config), "--json")
    assert res.code == 1
    target, optimizer = res.json()
    assert target["ok"] and not optimizer["ok"] and optimizer["structured"]
    assert "ignored the structured-output request" in optimizer["error"]
    assert "models.optimizer.options.structured_output: false" in optimizer["error"]
    assert "optimizer" in cli("doctor", str(config)).out.split("FAILED")[0].splitlines()[-1]


@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_a_roles_max_tokens_is_what_goes_on_the_wire_and_finish_reasons_are_journaled(
    cli: Cli, server: FakeProvider, tmp_path: Path, backend: str
) -> None:
    url = server.url + ("/v1" if backend == "openai" else "")
    field = "max_completion_tokens" if backend == "openai" else "max_tokens"
    sizes = ["--set", "train.num_epochs=1"]
    for limit, db in ((None, "default.db"), (77, "set.db")):
        extra = [] if limit is None else ["--set", f"models.target.max_tokens={limit}"]
        extra += ["--set", "models.optimizer.max_tokens=900"]
        path = str(tmp_path / db)
        args = [*SMALL, *sizes, *roles(backend, url), *extra]
        assert cli("init", str(EXAMPLE), "--db", path, "--name", "w", *args).code == 0
        server.log.clear()
        assert cli("run", "--db", path, "--max-stages", "3").code == 0
        sent = {r.body[field] for r in server.log if r.body["model"] == "m-target"}
        assert sent == {64 if limit is None else limit}  # sim's own limit, or the role's
        assert {r.body[field] for r in server.log if r.body["model"] == "m-optimizer"} <= {900}
    calls = cli("calls", "--db", str(tmp_path / "set.db"), "--json").json()
    assert calls and {c["finish_reason"] for c in calls} == {"stop"}
    server.optimizer_mode = "truncate"
    path = str(tmp_path / "cut.db")
    args = [*SMALL, *roles(backend, url), "--set", "models.optimizer.max_tokens=300"]
    assert cli("init", str(EXAMPLE), "--db", path, "--name", "c", *args).code == 0
    assert cli("run", "--db", path).code == 1
    optimizer = [c for c in cli("calls", "--db", path, "--json").json() if c["role"] == "optimizer"]
    assert optimizer and {c["finish_reason"] for c in optimizer} == {"length"}
