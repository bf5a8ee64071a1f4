"""Bad input: one clear line naming the culprit, exit 2, and nothing recorded is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE, ROOT, Cli, event_rows


@pytest.mark.parametrize(
    ("overrides", "culprit"),
    [
        (["--set", "train.bogus=1"], "train.bogus: unknown key"),
        (["--set", "train.batch_size=many"], "train.batch_size"),
        (["--set", "optimizer.min_learning_rate=9"], "min_learning_rate (9) exceeds"),
        (["--set", "evaluation.gate_metric=median"], "evaluation.gate_metric"),
        (["--set", "env.name=atlantis"], "unknown environment 'atlantis'"),
        (
            ["--set", "models.optimizer.backend=gpt-9"],
            "models.optimizer.backend: unknown model backend",
        ),
        (
            ["--set", "models.target.options.temperature=2"],
            "models.target.options.temperature: unknown option",
        ),
        (["--set", "env.options.selection=0"], "the selection split is empty"),
        (["--set", "env.skill_init=missing.md"], "env.skill_init"),
        (["--set", "train.train_size=5"], "train.train_size is 5"),
    ],
)
def test_bad_config_is_named_and_nothing_is_lost(
    cli: Cli, small_run: Path, overrides: list[str], culprit: str
) -> None:
    before = event_rows(small_run)
    res = cli("init", str(EXAMPLE), "--db", str(small_run), "--name", "another", *overrides)
    assert res.code == 2, res.err
    assert culprit in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert event_rows(small_run)[: len(before)] == before


def test_missing_and_malformed_config_files(cli: Cli, tmp_path: Path) -> None:
    res = cli("init", str(tmp_path / "absent.yaml"), "--db", str(tmp_path / "x.db"))
    assert res.code == 2 and "absent.yaml not found" in res.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  num_epochs: [1\n")
    res = cli("init", str(bad), "--db", str(tmp_path / "x.db"))
    assert res.code == 2 and "invalid YAML at line" in res.err
    nokey = tmp_path / "noenv.yaml"
    nokey.write_text("train:\n  num_epochs: 1\n")
    res = cli("init", str(nokey), "--db", str(tmp_path / "x.db"))
    assert res.code == 2 and "env: required key is missing" in res.err


def test_run_names_are_unique_and_unknown_runs_named(cli: Cli, small_run: Path) -> None:
    res = cli("init", str(EXAMPLE), "--db", str(small_run), "--name", "small")
    assert res.code == 2 and "already exists" in res.err
    res = cli("status", "--db", str(small_run), "--run", "ghost")
    assert res.code == 2 and "ghost" in res.err and "small" in res.err


def test_set_overrides_are_recorded_in_run_created(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "o.db")
    res = cli(
        "init",
        str(EXAMPLE),
        "--db",
        db,
        "--name",
        "o",
        "--set",
        "train.num_epochs=3",
        "--set",
        "evaluation.use_gate=false",
        "--set",
        "evaluation.gate_mixed_weight=0.25",
        "--json",
    )
    assert res.code == 0, res.err
    config = res.json()["event"]["payload"]["config"]
    assert config["train"]["num_epochs"] == 3
    assert config["evaluation"]["use_gate"] is False
    assert config["evaluation"]["gate_mixed_weight"] == 0.25
    assert config["optimizer"]["learning_rate"] == 3  # untouched keys keep the file's values


def test_db_default_comes_from_environment(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("SKILLOPT_DB", str(db))
    assert cli("init", str(ROOT / "examples" / "sim.yaml"), "--name", "e").code == 0
    assert db.exists()
    assert cli("runs", "--json").json()[0]["run"] == "e"


@pytest.mark.parametrize("value", ["inf", "1e999", "nan"])
def test_non_finite_numbers_are_refused(cli: Cli, tmp_path: Path, value: str) -> None:
    db = tmp_path / "x.db"
    res = cli("init", str(EXAMPLE), "--db", str(db), "--set", f"models.target.temperature={value}")
    assert res.code == 2 and "models.target.temperature" in res.err
    assert not db.exists()


def test_bad_paths_and_urls_are_one_line_errors(cli: Cli, small_run: Path, tmp_path: Path) -> None:
    cases = [
        (["status", "--db", "nosuchdialect://x"], "not a usable database URL"),
        (["init", str(EXAMPLE), "--db", str(tmp_path / "missing" / "x.db")], "does not exist"),
        (
            ["report", "--db", str(small_run), "-o", str(tmp_path / "missing" / "r.md")],
            "does not exist",
        ),
    ]
    for args, message in cases:
        res = cli(*args)
        assert res.code == 2, args
        assert message in res.err and len(res.err.strip().splitlines()) == 1
    listed = tmp_path / "list.yaml"
    listed.write_text("- train\n- env\n")
    res = cli("init", str(listed), "--db", str(tmp_path / "y.db"), "--set", "train.seed=1")
    assert res.code == 2 and "top level must be a mapping" in res.err


def test_reading_an_empty_file_leaves_it_untouched(cli: Cli, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    res = cli("status", "--db", str(empty))
    assert res.code == 2 and "empty" in res.err
    assert empty.stat().st_size == 0


def test_ledgers_do_not_depend_on_how_the_config_path_is_spelled(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    assert cli("init", "examples/sim.yaml", "--db", str(first), "--name", "p").code == 0
    assert cli("init", str(EXAMPLE.resolve()), "--db", str(second), "--name", "p").code == 0
    assert event_rows(first) == event_rows(second)


@pytest.mark.parametrize(
    ("setting", "culprit"),
    [
        (
            "models.optimizer.options.unusable_rate=nan",
            "models.optimizer.options.unusable_rate: not a finite",
        ),
        ("models.target.options.base_slip=inf", "models.target.options.base_slip: not a finite"),
        ("models.target.options.latency_ms=-1", "latency_ms: must be >= 0"),
        ("models.optimizer.options.decoy_rate=1.5", "decoy_rate: must be in [0, 1]"),
    ],
)
def test_adapter_options_out_of_range_are_refused_at_init(
    cli: Cli, tmp_path: Path, setting: str, culprit: str
) -> None:
    res = cli("init", str(EXAMPLE), "--db", str(tmp_path / "x.db"), "--set", setting)
    assert res.code == 2 and culprit in res.err, res.err


def test_non_utf8_files_are_named(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "latin1.yaml"
    config.write_bytes(EXAMPLE.read_bytes() + b"# caf\xe9\n")
    res = cli("init", str(config), "--db", str(tmp_path / "x.db"))
    assert res.code == 2 and "is not UTF-8" in res.err and "latin1.yaml" in res.err
    skill = tmp_path / "skill.md"
    skill.write_bytes(b"# r\xe8gles\n")
    res = cli(
        "init", str(EXAMPLE), "--db", str(tmp_path / "x.db"), "--set", f"env.skill_init={skill}"
    )
    assert res.code == 2 and "initial skill file" in res.err and "not UTF-8" in res.err
