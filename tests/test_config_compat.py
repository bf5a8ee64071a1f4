"""Config compatibility: the reference trainer's YAML (machine/config/compat.py, pure) read
through `_base_` inheritance and `--set` (commands/config_files.py), end to end through the CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from skillopt.commands.config_files import read_config_tree
from skillopt.commands.errors import InputError
from skillopt.machine.config.compat import (
    REDACTED,
    canonical_assignment,
    deep_merge,
    is_secret_key,
    normalize,
    redact,
    to_skillopt,
)
from skillopt.machine.config.schema import ConfigError, validate_config
from tests.conftest import EXAMPLE, ROOT, SMALL, Cli

REFERENCE_EXAMPLE = ROOT / "examples" / "reference" / "sim.yaml"
SKILL = str(ROOT / "skills" / "sim" / "initial.md")


def mapped(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A single file's dict through both steps, as the loader does."""
    return to_skillopt(normalize(data))


def ref(**sections: Any) -> dict[str, Any]:
    """A minimal reference-style config on the offline model, plus `sections`."""
    base: dict[str, Any] = {
        "model": {"optimizer_backend": "offline", "target_backend": "offline"},
        "env": {"name": "sim", "skill_init": "x.md"},
    }
    return deep_merge(base, sections)


def role(data: dict[str, Any], name: str) -> dict[str, Any]:
    return mapped(data)[0]["models"][name]


def warned(warnings: list[str], *words: str) -> bool:
    return any(all(w in line for w in words) for line in warnings)


# --- step 1: key names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "path", "value"),
    [
        ({"gradient": {"analyst_workers": 3}}, ("gradient", "workers"), 3),
        ({"analyst_workers": 3}, ("gradient", "workers"), 3),
        ({"edit_budget": 5}, ("optimizer", "learning_rate"), 5),
        ({"min_edit_budget": 1}, ("optimizer", "min_learning_rate"), 1),
        ({"optimizer": {"edit_budget": 5}}, ("optimizer", "learning_rate"), 5),
        ({"num_epochs": 2}, ("train", "num_epochs"), 2),
        ({"minibatch_size": 2}, ("gradient", "minibatch_size"), 2),
        ({"sel_env_num": 7}, ("evaluation", "sel_env_num"), 7),
        ({"env": "sim"}, ("env", "name"), "sim"),
        ({"skill_init": "a.md"}, ("env", "skill_init"), "a.md"),
        ({"workers": 6}, ("train", "workers"), 6),
        ({"env": {"workers": 6}}, ("train", "workers"), 6),
        ({"env": {"train_size": 400}}, ("train", "train_size"), 400),
        ({"env": {"exec_timeout": 300}}, ("models", "target", "timeout_s"), 300),
        ({"env": {"max_steps": 50}}, ("env", "options", "max_steps"), 50),
        ({"target_model": "m"}, ("model", "target"), "m"),
        ({"optimizer_model": "m"}, ("model", "optimizer"), "m"),
        ({"model_backend": "claude"}, ("model", "backend"), "claude"),
        ({"azure_openai_endpoint": "u"}, ("model", "azure_openai_endpoint"), "u"),
        ({"model": {"azure_endpoint": "u"}}, ("model", "azure_openai_endpoint"), "u"),
        ({"gradient": {"workers": 3}}, ("gradient", "workers"), 3),  # ours, unchanged
        ({"env": {"options": {"train": 4}}}, ("env", "options", "train"), 4),
    ],
)
def test_normalize_renames_reference_spellings(
    data: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    node: Any = normalize(data)
    for key in path:
        node = node[key]
    assert node == value


def test_two_spellings_of_one_key_in_one_file() -> None:
    same = normalize({"gradient": {"workers": 4, "analyst_workers": 4}})
    assert same == {"gradient": {"workers": 4}}
    with pytest.raises(ConfigError) as info:
        normalize({"gradient": {"workers": 4, "analyst_workers": 8}})
    assert "gradient.analyst_workers and gradient.workers" in str(info.value)
    with pytest.raises(ConfigError, match="env.train and env.options.train"):
        normalize({"env": {"options": {"train": 4}, "train": 5}})


def test_conflicting_secret_spellings_are_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        normalize({"model": {"azure_api_key": "AAA111", "azure_openai_api_key": "BBB222"}})
    assert "AAA111" not in str(info.value) and "BBB222" not in str(info.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("gradient.analyst_workers=4", "gradient.workers=4"),
        ("edit_budget=2", "optimizer.learning_rate=2"),
        ("env=sim", "env.name=sim"),
        ("env.workers=2", "train.workers=2"),
        ("env.max_steps=9", "env.options.max_steps=9"),
        ("model.azure_endpoint=https://x", "model.azure_openai_endpoint=https://x"),
        ("train.num_epochs=3", "train.num_epochs=3"),
        ("models.target.model=a=b", "models.target.model=a=b"),
        ("no-equals-sign", "no-equals-sign"),
    ],
)
def test_set_paths_take_our_spelling(given: str, expected: str) -> None:
    assert canonical_assignment(given) == expected


def test_our_own_format_passes_unchanged() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    out, warnings = mapped(copy.deepcopy(data))
    assert out == data and warnings == []


# --- step 2: the model section --------------------------------------------------------------


def test_openai_chat_with_an_azure_endpoint_is_azure() -> None:
    data = ref(
        model={
            "optimizer_backend": "openai_chat",
            "target_backend": "openai_chat",
            "optimizer": "gpt-opt",
            "target": "gpt-tgt",
            "azure_openai_endpoint": "https://shared.openai.azure.com/",
            "target_azure_openai_endpoint": "https://target.openai.azure.com/",
            "azure_openai_api_version": "2025-01-01",
            "azure_openai_auth_mode": "api_key",
            "reasoning_effort": "high",
        }
    )
    out, warnings = mapped(data)
    assert out["models"]["optimizer"] == {
        "backend": "azure",
        "base_url": "https://shared.openai.azure.com/",
        "api_version": "2025-01-01",
        "api_key_env": "AZURE_OPENAI_API_KEY",
        "model": "gpt-opt",
        "reasoning_effort": "high",
    }
    assert out["models"]["target"]["base_url"] == "https://target.openai.azure.com/"
    assert out["models"]["target"]["reasoning_effort"] == "high"
    assert warnings == []
    validate_config(out)


def test_azure_defaults_and_aad_auth_warns() -> None:
    data = ref(
        model={
            "backend": "azure_openai",
            "optimizer_backend": "openai_chat",
            "target_backend": "",
            "optimizer": "o",
            "target": "t",
            "azure_openai_endpoint": "https://e/",
            "azure_openai_auth_mode": "azure_cli",
        }
    )
    out, warnings = mapped(data)
    assert out["models"]["target"]["api_version"] == "2024-12-01-preview"
    assert warned(warnings, "model.azure_openai_auth_mode", "azure_cli", "AZURE_OPENAI_API_KEY")


def test_openai_chat_without_endpoint_is_an_error() -> None:
    data = ref(model={"target_backend": "openai_chat", "target": "gpt-5.5"})
    with pytest.raises(ConfigError) as info:
        mapped(data)
    assert str(info.value).startswith("model.target_backend: 'openai_chat' needs an Azure")


def test_openai_compatible_auth_mode_is_the_openai_backend() -> None:
    data = ref(
        model={
            "target_backend": "openai_chat",
            "target": "llama",
            "target_azure_openai_endpoint": "http://localhost:8000/v1",
            "target_azure_openai_auth_mode": "openai_compatible",
        }
    )
    assert role(data, "target") == {
        "backend": "openai",
        "base_url": "http://localhost:8000/v1",
        "model": "llama",
    }


def test_openai_compatible_backend() -> None:
    data = ref(
        model={
            "backend": "openai_compatible",
            "optimizer_backend": "",
            "target_backend": "openai_compatible",
            "target": "deepseek-chat",
            "optimizer": "deepseek-chat",
            "target_openai_compatible_base_url": "https://api.deepseek.com",
            "openai_compatible_temperature": 0.2,
            "reasoning_effort": "medium",
        }
    )
    out, warnings = mapped(data)
    assert out["models"]["target"] == {
        "backend": "openai",
        "base_url": "https://api.deepseek.com",
        "model": "deepseek-chat",
        "temperature": 0.2,
    }
    # No base_url: the reference's default endpoint, api.openai.com, with its key variable.
    assert out["models"]["optimizer"]["api_key_env"] == "OPENAI_COMPATIBLE_API_KEY"
    assert "base_url" not in out["models"]["optimizer"]
    assert warned(warnings, "model.reasoning_effort", "not sent")


def test_claude_chat_is_anthropic() -> None:
    data = ref(model={"backend": "claude", "optimizer_backend": "openai_chat", "target": "c1"})
    data["model"].pop("target_backend")
    data["model"]["optimizer"] = "c2"
    out, warnings = mapped(data)
    for name, model in (("target", "c1"), ("optimizer", "c2")):
        assert out["models"][name] == {
            "backend": "anthropic",
            "api_key_env": "ANTHROPIC_API_KEY",
            "model": model,
        }
    assert warned(warnings, "model.backend", "claude_chat", "Messages API")


def test_claude_chat_with_the_openai_default_model_is_an_error() -> None:
    data = ref(model={"target_backend": "claude_chat", "target": "gpt-5.5"})
    with pytest.raises(ConfigError, match=r"model\.target: name a Claude model"):
        mapped(data)


def test_target_only_label_keeps_the_optimizer() -> None:
    data = ref(
        model={
            "backend": "qwen",
            "target_backend": None,
            "target": "qwen3",
            "qwen_chat_base_url": "http://gpu:8000/v1",
            "qwen_chat_max_tokens": 2048,
            "qwen_chat_enable_thinking": False,
        }
    )
    out, warnings = mapped(data)
    assert out["models"]["target"] == {
        "backend": "openai",
        "base_url": "http://gpu:8000/v1",
        "max_tokens": 2048,
        "model": "qwen3",
    }
    assert out["models"]["optimizer"]["backend"] == "offline"  # its own key still rules
    assert warned(warnings, "model.qwen_chat_enable_thinking")


@pytest.mark.parametrize(
    ("model", "culprit"),
    [
        ({"target_backend": "codex_exec"}, "model.target_backend: backend 'codex_exec'"),
        ({"optimizer_backend": "minimax_chat"}, "model.optimizer_backend: backend 'minimax_chat'"),
        (
            {"backend": "claude_code_exec", "target_backend": ""},
            "model.backend: backend 'claude_code_exec'",
        ),
    ],
)
def test_unsupported_backend_names_key_value_and_what_we_support(
    model: dict[str, Any], culprit: str
) -> None:
    with pytest.raises(ConfigError) as info:
        mapped(ref(model=model))  # the other role stays offline
    message = str(info.value)
    assert message.startswith(culprit)
    assert "openai_chat" in message and "anthropic" in message


def test_unknown_model_key_and_auth_mode() -> None:
    with pytest.raises(ConfigError, match=r"^model\.temperature: unknown key$"):
        mapped(ref(model={"temperature": 0.1}))
    data = ref(
        model={
            "target_backend": "openai_chat",
            "target": "t",
            "azure_openai_endpoint": "https://e/",
            "azure_openai_auth_mode": "kerberos",
        }
    )
    with pytest.raises(ConfigError, match="model.azure_openai_auth_mode: unknown auth mode"):
        mapped(data)


def test_our_models_section_wins_over_the_mapped_one() -> None:
    data = ref(model={"target": "from-ref"}, models={"target": {"model": "ours"}})
    assert role(data, "target") == {"backend": "offline", "model": "ours"}


def test_model_keys_without_effect_are_listed_once() -> None:
    data = ref(
        model={
            "codex_exec_path": "codex",
            "codex_trace_to_optimizer": True,
            "codex_exec_sandbox": "read-only",
            "azure_openai_api_key": "",
            "rewrite_reasoning_effort": "high",
        }
    )
    _, warnings = mapped(data)
    assert warned(warnings, "model.codex_exec_sandbox", "'read-only'", "ignored")
    assert warned(warnings, "model.rewrite_reasoning_effort", "'high'", "ignored")
    assert not warned(warnings, "model.codex_exec_path:")  # the reference's default: quiet
    quiet = [w for w in warnings if w.startswith("ignored, no effect")]
    assert len(quiet) == 1
    for key in ("codex_exec_path", "codex_trace_to_optimizer", "azure_openai_api_key"):
        assert f"model.{key}" in quiet[0]


# --- step 2: env, optimizer, evaluation ------------------------------------------------------------


def test_env_empty_strings_and_ratio_list() -> None:
    out, _ = mapped(ref(env={"split_dir": "", "data_path": "", "split_ratio": [3, 1, 6]}))
    assert out["env"] == {"name": "sim", "skill_init": "x.md", "split_ratio": "3:1:6"}
    assert validate_config(out).env.ratio() == (3.0, 1.0, 6.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"split_mode": "split_dir"}, "env.split_mode is split_dir but env.split_dir is empty"),
        ({"split_mode": "ratio", "split_dir": "d"}, "env.split_mode is ratio but only"),
        ({"split_mode": "random"}, "env.split_mode: 'random' is neither"),
        ({"split_ratio": 7267}, "env.split_ratio: quote it"),
        ({"limit": 10}, "env.limit: cutting every split is not supported"),
    ],
)
def test_env_inconsistencies_are_errors(env: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        mapped(ref(env=env))
    assert str(info.value).startswith(message)


def test_split_mode_decides_between_dir_and_file() -> None:
    out, warnings = mapped(ref(env={"split_mode": "split_dir", "split_dir": "d", "data_path": "f"}))
    assert out["env"]["split_dir"] == "d" and "data_path" not in out["env"]
    assert warned(warnings, "env.data_path: ignored")
    out, warnings = mapped(ref(env={"split_mode": "ratio", "split_dir": "d", "data_path": "f"}))
    assert out["env"]["data_path"] == "f" and "split_dir" not in out["env"]
    assert warned(warnings, "env.split_dir: ignored")


def test_out_root_is_ignored_with_a_warning() -> None:
    _, warnings = mapped(ref(env={"out_root": "outputs/run1", "split_output_dir": ""}))
    assert warned(warnings, "env.out_root", "ledger", "ignored")
    assert warned(warnings, "ignored, no effect", "env.split_output_dir")


def test_retired_and_dead_keys_are_warned_not_errors() -> None:
    data = ref(
        gradient={"max_analyst_rounds": 3},
        optimizer={"meta_learning_rate": 2, "use_meta_reflect": False},
        train={"steps_per_epoch": 10},
        human_feedback={"enabled": False, "timeout_seconds": 0},
    )
    out, warnings = mapped(data)
    validate_config(out)
    (line,) = warnings
    for key in (
        "gradient.max_analyst_rounds",
        "optimizer.meta_learning_rate",
        "optimizer.use_meta_reflect",
        "train.steps_per_epoch",
        "human_feedback.enabled",
    ):
        assert key in line


def test_semantic_density_and_human_gate() -> None:
    out, warnings = mapped(
        ref(evaluation={"use_semantic_density": True, "leading_words": "MUST, never"})
    )
    assert not warnings  # the density bonus is implemented (issue 16), no longer ignored
    e = validate_config(out).evaluation
    assert (e.use_semantic_density, e.leading_words) == (True, ["MUST", "never"])
    with pytest.raises(ConfigError, match="human_feedback.enabled"):
        mapped(ref(human_feedback={"enabled": True}))


def test_autonomous_scheduler_keeps_the_references_meaning() -> None:
    # The reference's `autonomous` scheduler allows 999 edits, without an optimizer call.
    out, warnings = mapped(ref(optimizer={"lr_scheduler": "autonomous"}))
    assert out["optimizer"] == {"lr_scheduler": "autonomous"} and not warnings
    opt = validate_config(out).optimizer
    assert (opt.lr_scheduler, opt.lr_control_mode) == ("autonomous", "fixed")


def test_unknown_keys_stay_errors() -> None:
    out, _ = mapped(ref(gradient={"analyst_wrkers": 2}))
    with pytest.raises(ConfigError, match=r"^gradient\.analyst_wrkers: unknown key$"):
        validate_config(out)
    out, _ = mapped({**ref(), "memory": {"enabled": True}})
    with pytest.raises(ConfigError, match=r"^memory: unknown key$"):
        validate_config(out)


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("api_key", True),
        ("azure_openai_api_key", True),
        ("apiKey", True),
        ("auth_token", True),
        ("client_secret", True),
        ("password", True),
        ("search_api_key", True),
        ("max_tokens", True),  # only a string value would be redacted (and is invalid anyway)
        ("tokenizer", False),
        ("keyword", False),
        ("max_steps", False),
        ("search_auth_env", False),
    ],
)
def test_secret_looking_keys(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_redact_keeps_names_numbers_and_empties() -> None:
    data = {
        "models": {"target": {"api_key_env": "OPENAI_API_KEY", "max_tokens": 64}},
        "env": {
            "options": {
                "auth_token": "tok-123",
                "token_env": "sk-proj-abcdefghijklmnop1234567890",
                "api_keys": ["k1", ""],
                "password": "",
            }
        },
    }
    out, paths = redact(data)
    assert out["models"]["target"] == {"api_key_env": "OPENAI_API_KEY", "max_tokens": 64}
    assert out["env"]["options"] == {
        "auth_token": REDACTED,
        "token_env": REDACTED,
        "api_keys": [REDACTED, ""],
        "password": "",
    }
    assert sorted(paths) == [
        "env.options.api_keys",
        "env.options.auth_token",
        "env.options.token_env",
    ]
    assert redact(out)[1] == []  # idempotent


def test_a_key_in_the_reference_model_section_warns_and_is_dropped() -> None:
    out, warnings = mapped(ref(model={"azure_openai_api_key": "sk-live-abc"}))
    assert "sk-live-abc" not in json.dumps(out) + json.dumps(warnings)
    assert warned(warnings, "model.azure_openai_api_key", "environment variables only")


# --- _base_ inheritance ------------------------------------------------------------------------


def write(path: Path, data: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_base_relative_recursive_deep_merge_child_wins(tmp_path: Path) -> None:
    write(
        tmp_path / "common.yaml",
        {"train": {"num_epochs": 9, "seed": 1}, "evaluation": {"use_gate": False}},
    )
    write(
        tmp_path / "configs" / "_base_" / "default.yaml",
        {
            "_base_": "../../common.yaml",  # relative to this file
            "train": {"num_epochs": 4, "batch_size": 40},
            "gradient": {"analyst_workers": 16, "minibatch_size": 8},
            "env": {"name": "sim", "options": {"train": 30, "test": 9}},
            "leading": [1, 2, 3],
        },
    )
    child = write(
        tmp_path / "configs" / "sim.yaml",
        {
            "_base_": "_base_/default.yaml",
            "train": {"num_epochs": 2},
            "gradient": {"workers": 4},  # our spelling overrides the base's analyst_workers
            "env": {"train": 12},  # pass-through spelling overrides the base's options.train
            "leading": [7],
        },
    )
    assert read_config_tree(child) == {
        "train": {"num_epochs": 2, "seed": 1, "batch_size": 40},
        "evaluation": {"use_gate": False},
        "gradient": {"workers": 4, "minibatch_size": 8},
        # a flat top-level key is the benchmark's, as in the reference; lists are replaced
        "env": {"name": "sim", "options": {"train": 12, "test": 9, "leading": [7]}},
    }


def test_a_list_of_bases_merges_in_order(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"train": {"num_epochs": 1, "seed": 1}})
    write(tmp_path / "b.yaml", {"train": {"num_epochs": 2}})
    child = write(tmp_path / "c.yaml", {"_base_": ["a.yaml", "b.yaml"], "train": {"seed": 3}})
    assert read_config_tree(child) == {"train": {"num_epochs": 2, "seed": 3}}


def test_a_shared_grandparent_is_not_a_cycle(tmp_path: Path) -> None:
    write(tmp_path / "root.yaml", {"train": {"seed": 5}})
    write(tmp_path / "a.yaml", {"_base_": "root.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "root.yaml"})
    child = write(tmp_path / "c.yaml", {"_base_": ["a.yaml", "b.yaml"]})
    assert read_config_tree(child) == {"train": {"seed": 5}}


def test_base_cycle_is_named(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"_base_": "sub/b.yaml"})
    write(tmp_path / "sub" / "b.yaml", {"_base_": "../a.yaml"})
    with pytest.raises(InputError) as info:
        read_config_tree(tmp_path / "a.yaml")
    assert "circular _base_: a.yaml -> sub/b.yaml -> a.yaml" in str(info.value)
    write(tmp_path / "self.yaml", {"_base_": "self.yaml"})
    with pytest.raises(InputError, match=r"circular _base_: self.yaml -> self.yaml"):
        read_config_tree(tmp_path / "self.yaml")


def test_missing_or_malformed_base_names_the_file(tmp_path: Path) -> None:
    child = write(tmp_path / "child.yaml", {"_base_": "nope/base.yaml"})
    with pytest.raises(InputError) as info:
        read_config_tree(child)
    assert str(child) in str(info.value) and "nope/base.yaml" in str(info.value)
    assert "not found" in str(info.value)
    write(tmp_path / "bad.yaml", "train:\n  num_epochs: [1\n")
    write(child, {"_base_": "bad.yaml"})
    with pytest.raises(InputError, match=r"bad\.yaml: invalid YAML at line"):
        read_config_tree(child)
    write(child, {"_base_": 3})
    with pytest.raises(InputError, match="_base_ must be a path or a list of paths"):
        read_config_tree(child)


def test_base_paths_are_relative_to_the_file_naming_them(cli: Cli, tmp_path: Path) -> None:
    skill = write(tmp_path / "shared" / "skills" / "start.md", "# Skill\n\nBe exact.\n")
    write(
        tmp_path / "shared" / "base.yaml",
        {"env": {"name": "sim", "skill_init": "skills/start.md"}},
    )
    child = write(tmp_path / "runs" / "exp" / "child.yaml", {"_base_": "../../shared/base.yaml"})
    assert read_config_tree(child)["env"]["skill_init"] == "../../shared/skills/start.md"
    res = cli("init", str(child), "--db", str(tmp_path / "x.db"), *SMALL, "--json")
    assert res.code == 0, res.err
    assert res.json()["event"]["payload"]["initial_skill_hash"]
    assert skill.exists()


# --- the CLI ---------------------------------------------------------------------------------


def test_reference_example_runs_end_to_end(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "ref.db")
    res = cli("init", str(REFERENCE_EXAMPLE), "--db", db, "--name", "ref", *SMALL, "--json")
    assert res.code == 0, res.err
    payload = res.json()["event"]["payload"]
    config = payload["config"]
    assert config["gradient"]["workers"] == 4  # child's analyst_workers over the base's 16
    assert config["train"]["workers"] == 4  # env.workers
    assert config["train"]["num_epochs"] == 2 and config["train"]["batch_size"] == 6
    assert config["optimizer"]["learning_rate"] == 3
    assert config["models"]["target"]["timeout_s"] == 120  # env.exec_timeout
    assert config["models"]["optimizer"]["reasoning_effort"] == "medium"
    assert config["env"]["options"] == {"train": 12, "selection": 12, "test": 12}
    assert warned(payload["warnings"], "gradient.max_analyst_rounds")
    assert "warning: ignored, no effect" in res.err
    res = cli("run", "--db", db)
    assert res.code == 0, res.err
    status = cli("status", "--db", db, "--json").json()
    assert status["phase"] == "done"
    events = cli("events", "--db", db, "--json").json()
    assert events[0]["payload"]["warnings"] == payload["warnings"]
    assert cli("report", "--db", db, "--md").code == 0


def test_reference_example_resolves_like_the_native_one(cli: Cli, tmp_path: Path) -> None:
    db = str(tmp_path / "both.db")
    native = cli("init", str(EXAMPLE), "--db", db, "--name", "native", "--json").json()
    theirs = cli("init", str(REFERENCE_EXAMPLE), "--db", db, "--name", "ref", "--json").json()
    a, b = native["event"]["payload"], theirs["event"]["payload"]
    assert a["initial_skill_hash"] == b["initial_skill_hash"]
    assert "warnings" not in a  # a native file records exactly what it did before
    for config in (a["config"], b["config"]):
        config["env"].pop("skill_init")  # each relative to its own file
        for r in ("target", "optimizer"):
            config["models"][r].pop("reasoning_effort")
    assert a["config"] == b["config"]


def test_set_takes_both_spellings_with_casting(cli: Cli, tmp_path: Path) -> None:
    res = cli(
        "init",
        str(REFERENCE_EXAMPLE),
        "--db",
        str(tmp_path / "s.db"),
        "--set",
        "gradient.analyst_workers=2",  # reference spelling over the file's analyst_workers
        "--set",
        "edit_budget=2",  # a flat reference key
        "--set",
        "evaluation.use_gate=false",
        "--set",
        "evaluation.gate_mixed_weight=0.25",
        "--set",
        "env.split_ratio=1:1:1",
        "--set",
        "model.reasoning_effort=high",
        "--set",
        "model.target='123'",  # quotes force a string
        "--set",
        "train.workers=3",  # our spelling over the file's env.workers
        "--set",
        "env.selection=7",  # a benchmark key, passed through to env.options
        "--json",
    )
    assert res.code == 0, res.err
    config = res.json()["event"]["payload"]["config"]
    assert config["gradient"]["workers"] == 2
    assert config["optimizer"]["learning_rate"] == 2
    assert config["evaluation"]["use_gate"] is False
    assert config["evaluation"]["gate_mixed_weight"] == 0.25
    assert config["env"]["split_ratio"] == "1:1:1"
    assert config["models"]["target"]["reasoning_effort"] == "high"
    assert config["models"]["optimizer"]["reasoning_effort"] == "high"
    assert config["models"]["target"]["model"] == "123"
    assert config["train"]["workers"] == 3
    assert config["env"]["options"]["selection"] == 7


@pytest.mark.parametrize(
    ("overrides", "culprit"),
    [
        (["--set", "gradient.analyst_wrkers=2"], "gradient.analyst_wrkers: unknown key"),
        (["--set", "model.bogus=1"], "model.bogus: unknown key"),
        (["--set", "model.target_backend=codex_exec"], "backend 'codex_exec' is not supported"),
        (["--set", "env.split_mode=split_dir"], "env.split_mode is split_dir but"),
        (["--set", "env.max_steps=50"], "env.options.max_steps: unknown option"),
        (["--set", "gradient.analyst_workers=many"], "gradient.workers"),
        (["--set", "human_feedback.enabled=true"], "human_feedback.enabled"),
    ],
)
def test_bad_reference_input_is_one_line_exit_2(
    cli: Cli, tmp_path: Path, overrides: list[str], culprit: str
) -> None:
    db = tmp_path / "x.db"
    res = cli("init", str(REFERENCE_EXAMPLE), "--db", str(db), *overrides)
    assert res.code == 2, res.err
    assert culprit in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert not db.exists()


def test_bad_base_files_are_one_line_exit_2(cli: Cli, tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    write(tmp_path / "orphan.yaml", {"_base_": "gone.yaml"})
    for name, culprit in (("a.yaml", "circular _base_"), ("orphan.yaml", "gone.yaml")):
        res = cli("init", str(tmp_path / name), "--db", str(tmp_path / "x.db"))
        assert res.code == 2 and culprit in res.err, res.err
        assert len(res.err.strip().splitlines()) == 1


def ledger_bytes(db: Path) -> bytes:
    """The ledger file and any write-ahead log beside it."""
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_secrets_never_reach_the_ledger_or_reports(cli: Cli, tmp_path: Path) -> None:
    raw, raw_set = "sk-RAW-4f9c1e77d2ab", "tok-SET-91b2c3d4e5"
    child = write(
        tmp_path / "exp.yaml",
        {
            "_base_": str(REFERENCE_EXAMPLE),
            "model": {"azure_openai_api_key": raw, "target_azure_openai_api_key": raw},
            "env": {"skill_init": SKILL},
        },
    )
    db = tmp_path / "secret.db"
    res = cli(
        "init",
        str(child),
        "--db",
        str(db),
        "--name",
        "s",
        *SMALL,
        "--set",
        f"model.optimizer_azure_openai_api_key={raw_set}",
        "--json",
    )
    assert res.code == 0, res.err
    warnings = res.json()["event"]["payload"]["warnings"]
    assert warned(warnings, "model.azure_openai_api_key", "environment variables only")
    assert warned(warnings, "model.optimizer_azure_openai_api_key")
    assert cli("run", "--db", str(db)).code == 0
    outputs = [res.out, res.err]
    for args in (("report", "--md"), ("report", "--json"), ("events", "--json"), ("runs",)):
        out = cli(*args, "--db", str(db))
        assert out.code == 0, out.err
        outputs.append(out.out + out.err)
    blob = ledger_bytes(db)
    for secret in (raw, raw_set):
        assert secret.encode() not in blob
        assert all(secret not in text for text in outputs)
    assert b"azure_openai_api_key" in blob  # the warning (which names the key) is recorded


def test_secrets_in_errors_and_forks_are_hidden(cli: Cli, small_run: Path, tmp_path: Path) -> None:
    raw = "sk-ERR-0a1b2c3d4e5f"
    res = cli(
        "init", str(EXAMPLE), "--db", str(tmp_path / "e.db"), "--set", f"budget.max_tokens={raw}"
    )
    assert res.code == 2 and "budget.max_tokens" in res.err and raw not in res.err
    res = cli(
        "init",
        str(EXAMPLE),
        "--db",
        str(tmp_path / "e.db"),
        "--set",
        f"models.target.api_key={raw}",
    )
    assert res.code == 2 and "api_key_env" in res.err and raw not in res.err
    res = cli(
        "fork",
        "--db",
        str(small_run),
        "--at",
        "5",
        "--name",
        "f",
        "--set",
        "gradient.analyst_workers=2",
        "--set",
        f"models.target.options.auth_token={raw}",
        "--json",
    )
    assert res.code == 0, res.err
    assert "gradient.workers" in res.json()["changes"]
    assert "models.target.options.auth_token" in res.err and raw not in res.out + res.err
    assert raw.encode() not in ledger_bytes(small_run)


def test_doctor_reads_reference_configs(cli: Cli) -> None:
    res = cli("doctor", str(REFERENCE_EXAMPLE), "--json")
    assert res.code == 0, res.err
    assert [r["backend"] for r in res.json()] == ["offline", "offline"]
    assert "warning: ignored, no effect" in res.err
