"""Real SDKs over loopback: the anthropic and openai backends against local servers that
speak the providers' wire formats (tests/fakes.py). No network, no SDK internals mocked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, SMALL, Cli
from tests.fakes import FakeProvider, Fault

KEY = "sk-test-secret-0123456789"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("SKILLOPT_TEST_KEY", KEY)
    provider = FakeProvider({"train": 12, "selection": 12, "test": 12})
    yield provider
    provider.close()


def roles(backend: str, url: str, *extra: str) -> list[str]:
    out: list[str] = []
    for role in ("target", "optimizer"):
        out += [
            "--set",
            f"models.{role}.backend={backend}",
            "--set",
            f"models.{role}.model=m-{role}",
            "--set",
            f"models.{role}.base_url={url}",
            "--set",
            f"models.{role}.api_key_env=SKILLOPT_TEST_KEY",
        ]
        out += [x.replace("ROLE", role) for x in extra]
    return out


def _run(cli: Cli, tmp_path: Path, *args: str) -> tuple[str, int]:
    db = str(tmp_path / "remote.db")
    res = cli("init", str(EXAMPLE), "--db", db, "--name", "remote", *SMALL, *args)
    assert res.code == 0, res.err
    return db, cli("run", "--db", db).code


def _no_key_on_disk(tmp_path: Path) -> None:
    for path in tmp_path.iterdir():
        if path.name.startswith("remote.db"):
            assert KEY.encode() not in path.read_bytes(), path


def test_anthropic_end_to_end(cli: Cli, fake: FakeProvider, tmp_path: Path) -> None:
    db, code = _run(cli, tmp_path, *roles("anthropic", fake.url))
    assert code == 0
    report = cli("report", "--db", db, "--json").json()
    assert (
        report["final"]["best_score"] > report["baseline"]["gate_score"]
    )  # it learns over the wire
    assert cli("replay", "--db", db, "--verify").code == 0
    # the SDK sends the key as x-api-key or as a bearer token, depending on its version
    assert all(
        KEY
        in (r.headers.get("x-api-key"), r.headers.get("authorization", "").removeprefix("Bearer "))
        for r in fake.log
    )
    assert all(r.body["system"][0]["cache_control"] == {"type": "ephemeral"} for r in fake.log)
    optimizer = [r for r in fake.log if r.body["model"] == "m-optimizer"]
    assert optimizer and all(
        r.body["tool_choice"] == {"type": "tool", "name": "reply"} for r in optimizer
    )
    assert all("tools" not in r.body for r in fake.log if r.body["model"] == "m-target")
    train = report["tokens"]["rollout:train"]  # the fake's usage: 11 fresh + 5 cache-read in, 7 out
    assert (train["input"], train["cached"]) == (16 * train["calls"], 5 * train["calls"])
    _no_key_on_disk(tmp_path)


def test_openai_end_to_end(cli: Cli, fake: FakeProvider, tmp_path: Path) -> None:
    db, code = _run(
        cli, tmp_path, *roles("openai", f"{fake.url}/v1", "--set", "models.ROLE.temperature=0.2")
    )
    assert code == 0
    assert cli("replay", "--db", db, "--verify").code == 0
    assert {r.headers.get("authorization") for r in fake.log} == {f"Bearer {KEY}"}
    assert {r.path for r in fake.log} == {"/v1/chat/completions"}
    optimizer = [r for r in fake.log if r.body["model"] == "m-optimizer"]
    assert all(r.body["response_format"]["type"] == "json_schema" for r in optimizer)
    assert all(
        r.body["temperature"] == 0.2 and r.body["messages"][0]["role"] == "system" for r in fake.log
    )
    _no_key_on_disk(tmp_path)


def test_azure_deployment_path_and_key_header(cli: Cli, fake: FakeProvider, tmp_path: Path) -> None:
    db = str(tmp_path / "remote.db")
    args = roles("azure", fake.url, "--set", "models.ROLE.api_version=2024-10-21")
    assert cli("init", str(EXAMPLE), "--db", db, "--name", "az", *SMALL, *args).code == 0
    assert cli("run", "--db", db, "--max-stages", "2").code == 0  # dataset + baseline rollouts
    assert fake.log
    for r in fake.log:
        assert r.path == "/openai/deployments/m-target/chat/completions?api-version=2024-10-21"
        assert r.headers.get("api-key") == KEY


def test_transient_faults_are_retried(cli: Cli, fake: FakeProvider, tmp_path: Path) -> None:
    fake.faults.extend(
        [
            Fault(429, retry_after="0"),
            Fault(500),
            Fault(503),
            Fault(body=b'{"id": "msg_1", "content": [tru'),  # truncated body
            Fault(body=b"<html>bad gateway</html>"),  # not JSON at all
            Fault(500, delay_s=1.5),  # slower than the client's timeout
        ]
    )
    db, code = _run(
        cli,
        tmp_path,
        *roles(
            "anthropic",
            fake.url,
            "--set",
            "models.ROLE.timeout_s=0.5",
            "--set",
            "models.ROLE.max_attempts=8",
            "--set",
            "models.ROLE.retry_base_s=0.01",
        ),
        "--set",
        "train.workers=1",
    )
    assert code == 0
    assert [r.status for r in fake.log[:6]] == [429, 500, 503, 200, 200, 500]
    assert cli("status", "--db", db, "--json").json()["done"] is True
    assert cli("replay", "--db", db, "--verify").code == 0


def test_a_bad_key_fails_at_once_and_the_run_resumes(
    cli: Cli, fake: FakeProvider, tmp_path: Path
) -> None:
    fake.faults.append(Fault(401))
    db, code = _run(cli, tmp_path, *roles("anthropic", fake.url), "--set", "train.workers=1")
    assert code == 1
    assert len(fake.log) == 1  # not retried
    failed = cli("events", "--db", db, "--type", "stage.failed", "--json").json()
    message = failed[0]["payload"]["message"]
    assert "target model 'm-target' (anthropic at http://127.0.0.1" in message
    assert "HTTP 401" in message and "SKILLOPT_TEST_KEY" in message
    assert cli("run", "--db", db).code == 0  # the key works again: the run continues
    assert cli("replay", "--db", db, "--verify").code == 0


def test_retries_are_bounded(cli: Cli, fake: FakeProvider, tmp_path: Path) -> None:
    fake.faults.extend(Fault(500) for _ in range(3))
    db, code = _run(
        cli,
        tmp_path,
        *roles(
            "openai",
            f"{fake.url}/v1",
            "--set",
            "models.ROLE.max_attempts=3",
            "--set",
            "models.ROLE.retry_base_s=0.01",
        ),
        "--set",
        "train.workers=1",
    )
    assert code == 1 and len(fake.log) == 3
    message = cli("status", "--db", db, "--json").json()["last_failure"]["message"]
    assert "HTTP 500" in message and "gave up after 3 attempts" in message


def test_keys_come_only_from_the_environment(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "k.db")
    res = cli("init", str(EXAMPLE), "--db", db, "--set", "models.target.api_key=sk-abc")
    assert res.code == 2 and "never read from a config file" in res.err
    monkeypatch.delenv("NOPE_UNSET", raising=False)
    res = cli(
        "init",
        str(EXAMPLE),
        "--db",
        db,
        "--set",
        "models.target.backend=anthropic",
        "--set",
        "models.target.api_key_env=NOPE_UNSET",
    )
    assert res.code == 2 and "environment variable NOPE_UNSET is not set" in res.err
    res = cli("init", str(EXAMPLE), "--db", db, "--set", "models.optimizer.backend=openai")
    assert res.code == 2 and "models.optimizer.api_key_env" in res.err
    assert json.dumps(res.err).count("sk-") == 0


def test_doctor_says_which_role_works(cli: Cli, fake: FakeProvider, tmp_path: Path) -> None:
    config = tmp_path / "mixed.yaml"
    text = EXAMPLE.read_text().replace("../skills", str(EXAMPLE.parent.parent / "skills"))
    text = text.replace(
        "  optimizer:\n    backend: offline\n    model: offline-optimizer\n",
        f"  optimizer:\n    backend: openai\n    model: gpt-test\n    base_url: {fake.url}/v1\n"
        "    api_key_env: SKILLOPT_TEST_KEY\n    max_attempts: 1\n",
    )
    config.write_text(text)
    res = cli("doctor", str(config), "--json")
    assert res.code == 0, res.err
    assert [r["ok"] for r in res.json()] == [True, True]
    assert fake.log[-1].body["messages"][-1]["content"] == "Reply with the word OK."
    fake.faults.append(Fault(401))
    res = cli("doctor", str(config))
    assert res.code == 1
    assert "target    offline offline-target: ok" in res.out
    assert (
        "optimizer openai gpt-test at" in res.out and "FAILED" in res.out and "HTTP 401" in res.out
    )
    assert "SKILLOPT_TEST_KEY" in res.out


def test_a_huge_reply_is_stored_and_scored(cli: Cli, fake: FakeProvider, tmp_path: Path) -> None:
    fake.faults.append(Fault(huge=2_000_000))
    db, code = _run(cli, tmp_path, *roles("openai", f"{fake.url}/v1"), "--set", "train.workers=1")
    assert code == 0
    first = cli("events", "--db", db, "--type", "rollout.scored", "--json").json()[0]["payload"]
    assert (
        first["hard"] == 0.0
        and len(cli("blob", first["trajectory_hash"], "--db", db).out) > 2_000_000
    )
    assert cli("replay", "--db", db, "--verify").code == 0


def test_the_rate_limit_spaces_request_starts() -> None:
    from skillopt.adapters.models.remote import RateLimiter

    slept: list[float] = []
    limiter = RateLimiter(rpm=120)  # one start every 0.5 s
    for _ in range(4):
        limiter.wait(sleep=slept.append)
    assert len(slept) == 3  # the first request starts at once
    assert [round(x, 1) for x in slept] == [0.5, 1.0, 1.5]


def test_status_reports_spending_per_role(cli: Cli, fake: FakeProvider, tmp_path: Path) -> None:
    prices = ["--set", "models.ROLE.prices.input=2", "--set", "models.ROLE.prices.output=4"]
    db, code = _run(cli, tmp_path, *roles("anthropic", fake.url, *prices))
    assert code == 0
    status = cli("status", "--db", db, "--json").json()
    target, optimizer = status["by_role"]["target"], status["by_role"]["optimizer"]
    assert target["calls"] + optimizer["calls"] == len(fake.log)
    assert target["tokens"] == 23 * target["calls"]  # the fake's usage: 11 + 5 cached in, 7 out
    assert target["cost"] == round(
        target["calls"] * (16 * 2 + 7 * 4) / 1e6, 6
    )  # cached at input price
    assert status["cost"] == round(target["cost"] + optimizer["cost"], 6)


def test_a_key_in_api_key_env_is_refused_and_never_echoed(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    for value in ("sk-proj-SECRETSECRET123", "AbCdEf0123456789abcdef0123"):
        res = cli(
            "init",
            str(EXAMPLE),
            "--db",
            str(db),
            "--set",
            "models.target.backend=openai",
            "--set",
            "models.target.base_url=http://127.0.0.1:9/v1",
            "--set",
            f"models.target.api_key_env={value}",
        )
        assert res.code == 2 and "NAME of an environment variable" in res.err
        assert value not in res.err + res.out
    assert not db.exists()


def test_a_named_but_unset_key_is_an_error_even_for_a_local_server(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOCAL_KEY_UNSET", raising=False)
    res = cli(
        "init",
        str(EXAMPLE),
        "--db",
        str(tmp_path / "k.db"),
        "--set",
        "models.target.backend=openai",
        "--set",
        "models.target.base_url=http://127.0.0.1:9/v1",
        "--set",
        "models.target.api_key_env=LOCAL_KEY_UNSET",
    )
    assert res.code == 2 and "LOCAL_KEY_UNSET is not set" in res.err


def test_non_model_bodies_are_retried_and_each_attempt_is_journaled(
    cli: Cli, fake: FakeProvider, tmp_path: Path
) -> None:
    fake.faults.extend(
        [
            Fault(body=b"<html>bad gateway</html>", content_type="text/html"),
            Fault(body=b'{"id": "x", "object": "chat.completion"}'),
            Fault(429, retry_after="0"),
        ]
    )
    db, code = _run(
        cli,
        tmp_path,
        *roles("openai", f"{fake.url}/v1", "--set", "models.ROLE.retry_base_s=0.01"),
        "--set",
        "train.workers=1",
    )
    assert code == 0
    calls = cli("calls", "--db", db, "--json").json()
    failed = [c for c in calls if c["status"] == "failed"]
    assert [f["error"].split(":")[0] for f in failed] == ["attempt 1", "attempt 2", "attempt 3"]
    assert len({f["id"].split("-f")[0] for f in failed}) == 1  # three attempts of one call
    answered = [c for c in calls if c["id"] == failed[0]["id"].split("-f")[0]]
    assert len(answered) == 1 and answered[0]["status"] == "ok" and answered[0]["retries"] == 3


def test_cached_input_is_priced_at_the_cached_price(
    cli: Cli, fake: FakeProvider, tmp_path: Path
) -> None:
    prices = [
        "--set",
        "models.ROLE.prices.input=2",
        "--set",
        "models.ROLE.prices.output=4",
        "--set",
        "models.ROLE.prices.cached_input=0.5",
    ]
    db, code = _run(cli, tmp_path, *roles("anthropic", fake.url, *prices))
    assert code == 0
    target = cli("status", "--db", db, "--json").json()["by_role"]["target"]
    assert target["cost"] == round(target["calls"] * (11 * 2 + 5 * 0.5 + 7 * 4) / 1e6, 6)
