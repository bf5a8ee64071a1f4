"""Prompt caching over the wire (issue 14): the real SDKs against loopback servers that apply
the providers' caching rules (tests/fake_cache.py). Where the breakpoints fall, what is sent
as prompt_cache_key, what the ledger records of cache reads and writes, how writes are
priced, and the warning when a role's prefix is too short for its model to cache."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE, SMALL, Cli
from tests.fakes import FakeProvider, Fault, Logged
from tests.test_providers import KEY, roles

SKILL = (EXAMPLE.parent.parent / "skills" / "sim" / "initial.md").read_text()
HEAD = "## Current Skill\n\n"


@pytest.fixture
def caching(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("SKILLOPT_TEST_KEY", KEY)
    # the demo's skill is short: minimums the target's and the optimizer's prefixes clear
    provider = FakeProvider(
        {"train": 12, "selection": 12, "test": 12},
        caching=True,
        cache_min={"m-target": 32, "m-optimizer": 256},
    )
    yield provider
    provider.close()


def _init(cli: Cli, db: Path, *args: str) -> Any:
    res = cli("init", str(EXAMPLE), "--db", str(db), "--name", "c", *SMALL, *args)
    assert res.code == 0, res.err
    return res


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    """An Anthropic request's blocks in cache order: tools, system, then messages."""
    out = [*(body.get("tools") or []), *body["system"]]
    for m in body["messages"]:
        content = m["content"]
        out += [{"text": content}] if isinstance(content, str) else content
    return out


def _answered(log: list[Logged], model: str) -> list[Logged]:
    return [r for r in log if r.body["model"] == model and r.status == 200]


def test_anthropic_breakpoints_put_the_skill_in_the_cached_prefix(
    cli: Cli, caching: FakeProvider, tmp_path: Path
) -> None:
    db = tmp_path / "a.db"
    prices = ["--set", "models.ROLE.prices.input=2", "--set", "models.ROLE.prices.output=4"]
    writes = [
        "--set",
        "models.ROLE.cache.write_price=2.5",
        "--set",
        "models.ROLE.cache.read_price=0.2",
    ]
    _init(cli, db, *roles("anthropic", caching.url, *prices, *writes))
    assert cli("run", "--db", str(db)).code == 0
    assert cli("replay", "--db", str(db), "--verify").code == 0

    optimizer = _answered(caching.log, "m-optimizer")
    assert optimizer
    for r in optimizer:
        blocks = _blocks(r.body)
        marked = [k for k, b in enumerate(blocks) if "cache_control" in b]
        assert 2 <= len(marked) <= 4
        last = marked[-1]
        cached = blocks[last]["text"]
        # the whole current-skill section ends the cached prefix; the call's payload follows
        heads = (HEAD, "## Previous epoch's last skill\n\n")  # steps', epoch ends' calls
        assert cached.startswith(heads) and cached.endswith("\n\n")
        payload = ("## Budget", "## Merge group", "## Guidance so far", "## Previous memory")
        assert blocks[last + 1]["text"].startswith(payload)
        assert "tools" in r.body and r.body["system"][0].get("cache_control")
    first = _blocks(optimizer[0].body)
    assert [b["text"] for b in first if "cache_control" in b][-1] == f"{HEAD}{SKILL.strip()}\n\n"

    target = _answered(caching.log, "m-target")
    for r in target:  # the skill is the system block, which is a breakpoint
        assert r.body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert r.body["system"][0]["text"].startswith(SKILL.strip()[:40])
        assert isinstance(r.body["messages"][0]["content"], str)  # the item: not cached

    # the prefixes are cached: every call after a prefix's first reads it
    used = [r.usage or {} for r in target + optimizer]
    assert sum(u["cache_read_input_tokens"] for u in used) > 0
    assert sum(u["cache_creation_input_tokens"] for u in used) > 0
    assert (
        sum(1 for r in optimizer if r.usage and r.usage["cache_read_input_tokens"])
        > len(optimizer) // 2
    )

    # the ledger records what the provider reported, reads and writes, per call
    calls = [c for c in cli("calls", "--db", str(db), "--json").json() if c["status"] == "ok"]
    for role, logged in (("target", target), ("optimizer", optimizer)):
        mine = [c for c in calls if c["role"] == role]
        assert sum(c["cache_read"] for c in mine) == sum(
            (r.usage or {})["cache_read_input_tokens"] for r in logged
        )
        assert sum(c["cache_write"] for c in mine) == sum(
            (r.usage or {})["cache_creation_input_tokens"] for r in logged
        )
        for c in mine:  # a write at the write price, a read at the read price
            fresh = c["tokens_in"] - c["cache_read"] - c["cache_write"]
            usd = fresh * 2 + c["cache_write"] * 2.5 + c["cache_read"] * 0.2 + c["tokens_out"] * 4
            assert c["cost"] == round(usd / 1e6, 6)

    report = cli("report", "--db", str(db), "--json").json()
    reflect = report["tokens"]["reflect"]
    logged_in = sum((r.usage or {})["input_tokens"] for r in optimizer)
    assert reflect["written"] > 0 and 0 < reflect["cached_share"] < 1
    assert reflect["cached_share"] == round(reflect["cached"] / reflect["input"], 4)
    assert reflect["saved"] == round(
        (reflect["cached"] * (2 - 0.2) - reflect["written"] * (2.5 - 2)) / 1e6, 6
    )
    for t in report["tokens"].values():  # per stage, writes at the write price too
        fresh = t["input"] - t["cached"] - t["written"]
        usd = fresh * 2 + t["written"] * 2.5 + t["cached"] * 0.2 + t["output"] * 4
        assert t["cost"] == round(usd / 1e6, 6)
    status = cli("status", "--db", str(db), "--json").json()["by_role"]
    assert status["optimizer"]["cost"] == pytest.approx(
        sum(c["cost"] for c in calls if c["role"] == "optimizer"), abs=1e-5
    )  # the journal's calls, each rounded to millionths, and the ledger's stage totals agree
    assert logged_in > 0
    md = cli("report", "--db", str(db), "--md").out
    assert "| stage | calls | input tokens | cached share | cache writes |" in md
    assert (
        f"| reflect | {reflect['calls']} | {reflect['input']} | {reflect['cached_share']:.1%} |"
        in md
    )
    html = cli("report", "--db", str(db), "--html").out  # the same columns
    model_calls = html[html.index("<h2>Model calls</h2>") :]
    for column in ("cached share", "cache writes", "saved by the cache"):
        assert f"<th>{column}</th>" in model_calls, column
    assert f">{reflect['cached_share']:.1%}<" in model_calls


def test_a_skill_under_the_models_minimum_is_said_once_with_the_tokens_missing(
    cli: Cli, caching: FakeProvider, tmp_path: Path
) -> None:
    caching.cache.minimum["m-target"] = 4096  # the provider's rule (Haiku 4.5's minimum)
    minimum = ["--set", "models.target.cache.min_prefix_tokens=4096"]  # ours, from the table
    args = [*roles("anthropic", caching.url), *minimum]
    missing = 4096 - math.ceil(len(SKILL) / 4)
    said = f"is {missing:,} tokens short of the 4,096 tokens m-target caches at least"

    estimate = cli("estimate", str(EXAMPLE), *SMALL, *args)
    assert estimate.code == 0 and estimate.err.count(said) == 1, estimate.err
    db = tmp_path / "w.db"
    init = _init(cli, db, *args)
    assert init.err.count(said) == 1 and init.err.count("cacheable prefix") == 1
    assert cli("run", "--db", str(db), "--max-stages", "2").code == 0
    md = cli("report", "--db", str(db), "--md").out
    assert md.count(said) == 1
    warnings = cli("report", "--db", str(db), "--json").json()["warnings"]
    assert sum(said in w for w in warnings) == 1
    doctor = cli("doctor", "--db", str(db))
    assert doctor.code == 0 and doctor.err.count(said) == 1
    # and it is true: no target call was cached, none wrote
    target = _answered(caching.log, "m-target")
    assert target and all(
        (r.usage or {})["cache_read_input_tokens"] == 0
        and (r.usage or {})["cache_creation_input_tokens"] == 0
        for r in target
    )
    # a minimum the skill clears: no warning
    res = cli("estimate", str(EXAMPLE), *SMALL, *roles("anthropic", caching.url))
    assert "cacheable prefix" not in res.err


def test_a_doctor_on_a_config_says_it_too(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    text = EXAMPLE.read_text().replace("../skills", str(EXAMPLE.parent.parent / "skills"))
    config.write_text(text.replace("model: offline-target", "model: claude-haiku-4-5"))
    res = cli("doctor", str(config))
    missing = 4096 - math.ceil(len(SKILL) / 4)
    assert res.code == 0, res.err
    assert res.err.count(f"{missing:,} tokens short of the 4,096 tokens claude-haiku-4-5") == 1


def test_openai_prompt_cache_key_is_stable_across_a_stages_calls(
    cli: Cli, caching: FakeProvider, tmp_path: Path
) -> None:
    db = tmp_path / "o.db"
    _init(cli, db, *roles("openai", f"{caching.url}/v1"), "--set", "train.workers=1")
    run_id = cli("runs", "--db", str(db), "--json").json()[0]["id"]
    assert cli("run", "--db", str(db), "--max-stages", "2").code == 0  # dataset, baseline
    target = _answered(caching.log, "m-target")
    keys = [r.body.get("prompt_cache_key") for r in target]
    assert all(k and k.startswith(f"skillopt-{run_id}-target-") and len(k) <= 64 for k in keys)
    # the baseline pass: 12 selection items, one skill, one key
    assert len(set(keys)) == 1 and len(keys) == 12
    assert cli("run", "--db", str(db)).code == 0
    by_skill: dict[str, set[str]] = {}
    for r in _answered(caching.log, "m-target"):
        by_skill.setdefault(r.body["messages"][0]["content"], set()).add(r.body["prompt_cache_key"])
    assert all(len(k) == 1 for k in by_skill.values()) and len(by_skill) > 1
    optimizer = _answered(caching.log, "m-optimizer")
    assert all(
        r.body["prompt_cache_key"].startswith(f"skillopt-{run_id}-optimizer-") for r in optimizer
    )
    step1 = [
        r for r in optimizer if f"{HEAD}{SKILL.strip()}\n\n" in r.body["messages"][1]["content"]
    ]
    assert len({r.body["prompt_cache_key"] for r in step1}) == 1
    # automatic prefix caching: the recorded reads are what the server reported
    calls = cli("calls", "--db", str(db), "--json").json()
    assert sum(c["cache_read"] for c in calls if c["status"] == "ok") == sum(
        (r.usage or {})["prompt_tokens_details"]["cached_tokens"] for r in caching.log if r.usage
    )
    assert cli("replay", "--db", str(db), "--verify").code == 0


def test_a_reflection_asks_the_active_modes_schema_and_a_reask_reads_the_cached_prefix(
    cli: Cli, caching: FakeProvider, tmp_path: Path
) -> None:
    # the first optimizer reply is JSON but not a reflection: re-asked as a follow-up turn
    caching.faults.append(Fault(text='{"patch": "none"}', model="m-optimizer"))
    db = tmp_path / "r.db"
    _init(cli, db, *roles("anthropic", caching.url), "--set", "train.workers=1")
    assert cli("run", "--db", str(db), "--max-stages", "6").code == 0
    optimizer = _answered(caching.log, "m-optimizer")
    first = optimizer[0]
    reask = next(r for r in optimizer if len(r.body["messages"]) > 1)
    turns = reask.body["messages"]
    assert [m["role"] for m in turns] == ["user", "assistant", "user"]
    assert turns[0]["content"] == first.body["messages"][0]["content"]  # the original prompt
    assert turns[1]["content"] == '{"patch": "none"}' and turns[2]["content"].startswith(
        "Your reply could not be used"
    )
    # the re-ask reads tools + template + skill from the cache the first call wrote
    written = (first.usage or {})["cache_creation_input_tokens"]
    assert written > 0 and (reask.usage or {})["cache_read_input_tokens"] == written
    # this version asks for the active update mode's fields only (patch: edits)
    schema = json.dumps(first.body["tools"][0]["input_schema"])
    assert '"edits"' in schema and "revise_suggestions" not in schema
    assert "skill_candidates" not in schema
    assert cli("replay", "--db", str(db), "--verify").code == 0


def test_a_run_recorded_before_version_4_keeps_asking_for_every_modes_schema(
    cli: Cli, caching: FakeProvider, tmp_path: Path
) -> None:
    db = tmp_path / "v3.db"
    _init(cli, db, *roles("anthropic", caching.url), "--set", "config_version=3")
    assert cli("run", "--db", str(db), "--max-stages", "6").code == 0
    reflect = [
        r
        for r in _answered(caching.log, "m-optimizer")
        if "## Trajectories" in json.dumps(r.body["messages"])
    ]
    assert reflect
    for r in reflect:
        schema = json.dumps(r.body["tools"][0]["input_schema"])
        assert "revise_suggestions" in schema and "skill_candidates" in schema
    assert cli("replay", "--db", str(db), "--verify").code == 0


def test_init_records_the_model_tables_cache_rules_beside_the_prices(
    cli: Cli, tmp_path: Path
) -> None:
    db = tmp_path / "t.db"
    args = [
        *("--set", "models.target.model=claude-haiku-4-5"),
        *("--set", "models.optimizer.model=claude-sonnet-4-5"),
        *("--set", "models.optimizer.prices.input=2", "--set", "models.optimizer.prices.output=8"),
    ]
    init = _init(cli, db, *args)
    assert "models.target.cache: the built-in prompt-cache rules of claude-haiku-4-5" in init.err
    created = cli("events", "--db", str(db), "--type", "run.created", "--json").json()[0]
    models = created["payload"]["config"]["models"]
    # the table's list price ($1 input) for haiku, the config's own ($2) for the optimizer
    assert models["target"]["cache"] == {
        "min_prefix_tokens": 4096,
        "write_price": 1.25,
        "read_price": None,
    }
    assert models["target"]["prices"]["cached_input"] == 0.1
    assert models["optimizer"]["cache"]["min_prefix_tokens"] == 1024
    assert models["optimizer"]["cache"]["write_price"] == 2.5
    given = _init(cli, tmp_path / "g.db", *args, "--set", "models.target.cache.write_price=9")
    assert "write_price" not in given.err.split("claude-haiku-4-5")[1].split("\n")[0]


def test_a_run_without_cache_writes_recorded_before_version_4_reports_as_it_did(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The default loopback usage reads 5 cached tokens a call and writes none: a version-3
    run (recorded before writes were counted) keeps the old table; a version-4 run adds the
    cache columns."""
    monkeypatch.setenv("SKILLOPT_TEST_KEY", KEY)
    fake = FakeProvider({"train": 12, "selection": 12, "test": 12})
    try:
        for version, columns in (("3", False), ("4", True)):
            db = tmp_path / f"v{version}.db"
            args = ["--set", f"config_version={version}"]
            _init(cli, db, *roles("anthropic", fake.url), *args)
            assert cli("run", "--db", str(db), "--max-stages", "3").code == 0
            md = cli("report", "--db", str(db), "--md").out
            assert ("| cached share |" in md) is columns
            assert ("| stage | calls | input tokens | output tokens | cost |" in md) is not columns
            tokens = cli("report", "--db", str(db), "--json").json()["tokens"]
            assert all(("cached_share" in t) is columns for t in tokens.values())
    finally:
        fake.close()


def test_verify_holds_the_journals_cache_writes_to_the_events(
    cli: Cli, caching: FakeProvider, tmp_path: Path
) -> None:
    db = tmp_path / "v.db"
    _init(cli, db, *roles("anthropic", caching.url))
    assert cli("run", "--db", str(db), "--max-stages", "6").code == 0
    assert cli("verify", "--db", str(db)).code == 0
    with sqlite3.connect(db) as conn:
        (call_id,) = conn.execute(
            "SELECT id FROM llm_calls WHERE cache_write > 0 AND role = 'optimizer' LIMIT 1"
        ).fetchone()
        conn.execute("UPDATE llm_calls SET cache_write = cache_write + 1 WHERE id = ?", (call_id,))
    res = cli("verify", "--db", str(db))
    assert res.code == 1 and f"call {call_id}: the journal holds" in res.out + res.err
