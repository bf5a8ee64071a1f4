"""Hostile or broken configs and data fail fast with one line naming the culprit: an alias
bomb, a recursive anchor, deep nesting, a duplicate key, huge numbers, a huge file; NaN and
Infinity in a dataset."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, SMALL, Cli

SKILL = EXAMPLE.parent.parent / "skills" / "sim" / "initial.md"
BASE = f"env:\n  name: sim\n  skill_init: {SKILL}\n"
BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{k}: &{k} [{', '.join(['*' + p] * 10)}]\n"
    for p, k in zip("abcdefgh", "bcdefghi", strict=True)
)
CORPUS = [
    (
        "alias_bomb",
        BASE + "train:\n  seed: 1\nextra:\n" + "".join("  " + x + "\n" for x in BOMB.splitlines()),
        "more than 20 aliases",
    ),
    ("recursive_anchor", BASE + "train: &t\n  seed: *t\n", "recursive alias *t at line 5"),
    (
        "deep_nesting",
        BASE + "train:\n  x: " + "[" * 200 + "]" * 200 + "\n",
        "nested deeper than 32",
    ),
    ("duplicate_key", BASE + "train:\n  seed: 1\n  seed: 2\n", "duplicate key 'seed' at line 6"),
    ("huge_epochs", BASE + "train:\n  num_epochs: 1000000000000\n", "train.num_epochs"),
    ("huge_workers", BASE + "train:\n  workers: 100000\n", "train.workers"),
    (
        "huge_max_tokens",
        BASE + "models:\n  target:\n    max_tokens: 99999999999\n",
        "models.target.max_tokens",
    ),
    ("huge_file", BASE + "# " + "x" * 1_100_000 + "\n", "is over 1000000 bytes"),
]


@pytest.mark.parametrize(("name", "text", "named"), CORPUS, ids=[c[0] for c in CORPUS])
def test_a_hostile_config_fails_fast_naming_the_culprit(
    cli: Cli, tmp_path: Path, name: str, text: str, named: str
) -> None:
    config = tmp_path / f"{name}.yaml"
    config.write_text(text)
    start = time.monotonic()
    res = cli("init", str(config), "--db", str(tmp_path / "x.db"))
    assert time.monotonic() - start < 2.0
    assert res.code == 2 and named in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_in_a_dataset_are_refused(cli: Cli, tmp_path: Path, constant: str) -> None:
    rows = [json.dumps({"q": f"q{i}", "a": "x"}) for i in range(9)]
    rows.append('{"q": "q9", "a": "x", "weight": ' + constant + "}")
    (tmp_path / "d.jsonl").write_text("\n".join(rows) + "\n")
    (tmp_path / "s.md").write_text("# S\n")
    config = tmp_path / "t.yaml"
    config.write_text(
        "env:\n  name: task\n  skill_init: s.md\n  data_path: d.jsonl\n  options:\n"
        "    fields: {input: q, expected: a}\n    scorers: [{type: exact}]\n"
    )
    res = cli("init", str(config), "--db", str(tmp_path / "x.db"))
    assert res.code == 2 and "d.jsonl line 10" in res.err and constant.strip("-") in res.err


@pytest.mark.parametrize(
    "url",
    [
        "https://user:S3cretPW@llm.example.com/v1",
        "https://llm.example.com/v1?api-key=S3cretPW",
        "https://llm.example.com/v1?x=1&token=S3cretPW",
    ],
)
def test_a_url_with_a_credential_is_never_recorded(cli: Cli, tmp_path: Path, url: str) -> None:
    db = tmp_path / "runs.db"
    key = "models.target.base_url=" + url
    res = cli("init", str(EXAMPLE), "--db", str(db), "--set", key)
    assert res.code == 2 and "S3cretPW" not in res.out + res.err, res.err
    (line,) = res.err.strip().splitlines()
    assert "models.target.base_url" in line and "credential" in line, line
    assert not db.exists() or "S3cretPW" not in db.read_bytes().decode("latin-1")
    # a fork cannot smuggle one in either
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "ok", *SMALL).code == 0
    forked = cli("fork", "--db", str(db), "--at", "1", "--name", "f", "--set", key)
    assert forked.code == 2 and "S3cretPW" not in forked.out + forked.err, forked.err
    assert "S3cretPW" not in db.read_bytes().decode("latin-1")


def test_a_url_without_a_credential_is_kept() -> None:
    from skillopt.machine.config.secrets import carries_credential

    assert not carries_credential("https://llm.example.com:8443/v1?model=x")
    assert not carries_credential("http://user@host/v1")  # a user name is no secret
    assert carries_credential("postgresql://u:pw@db/x")
