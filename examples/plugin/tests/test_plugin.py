"""The plugin's own tests. Run them with the plugin installed next to skillopt:

pip install -e examples/plugin && pytest examples/plugin/tests
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from skillopt_acronym.env import RULE, AcronymEnvironment
from skillopt_acronym.model import InitialsModel

from skillopt.adapters.protocol import AdapterError, DataSource, RoleSettings
from skillopt.adapters.registry import env_names, make_environment, make_model, model_names

SKILL = (Path(__file__).resolve().parents[1] / "skill.md").read_text("utf-8")


def test_entry_points_name_the_environment_and_the_model() -> None:
    assert "acronym" in {ep.name for ep in entry_points(group="skillopt.environments")}
    assert "initials" in {ep.name for ep in entry_points(group="skillopt.models")}
    assert "acronym" in env_names() and "initials" in model_names()
    env = make_environment("acronym", {"train": 2, "selection": 1, "test": 1})
    assert isinstance(env, AcronymEnvironment)
    model = make_model(RoleSettings(role="target", backend="initials", model="i1"))
    assert isinstance(model, InitialsModel) and model.name == "i1"


def test_the_model_follows_the_format_the_skill_states_last() -> None:
    env = AcronymEnvironment({})
    model = InitialsModel("target", "i1", {})
    item = env.items("train")[0]  # portable network graphics
    plain = env.rollout(item, SKILL, model)
    assert (plain.hard, plain.soft) == (0.0, 0.5)
    assert plain.fail_reason.startswith("wrong_format: got 'png'")
    ruled = env.rollout(item, SKILL + f"\n- {RULE}\n", model)
    assert (ruled.hard, ruled.fail_reason) == (1.0, "")
    assert ruled.feedback["expected"] == "PNG"
    again = env.rollout(item, SKILL + f"\n- {RULE}\n", model)
    assert again == ruled  # same answer, same scores


def test_items_from_a_data_file(tmp_path: Path) -> None:
    data = tmp_path / "phrases.jsonl"
    rows = [{"id": f"p{i}", "phrase": p} for i, p in enumerate(["a b", "c d", "e f", "g h"])]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    env = AcronymEnvironment({}, DataSource(data_path=str(data), split_ratio=(2, 1, 1)))
    assert [len(env.items(s)) for s in ("train", "selection", "test")] == [2, 1, 1]
    data.write_text('{"id": "p0"}\n')
    with pytest.raises(AdapterError, match=r"phrases.jsonl line 1: missing required field"):
        AcronymEnvironment({}, DataSource(data_path=str(data), split_ratio=(1, 0, 0)))


def test_bad_options_are_refused() -> None:
    with pytest.raises(AdapterError, match="env.options.size: unknown option"):
        AcronymEnvironment({"size": 3})
    with pytest.raises(AdapterError, match="models.target.options.temperature"):
        InitialsModel("target", "i1", {"temperature": 0.5})
