"""machine/optimizer/replies.py (optimizer replies -> values) and machine/config/schema.py (validation, --set)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from skillopt.machine.config.schema import (
    ConfigError,
    SkilloptConfig,
    apply_override,
    cast_value,
    validate_config,
)
from skillopt.machine.core.edits import Edit
from skillopt.machine.optimizer.replies import (
    ReplyError,
    extract_json_object,
    parse_ranking,
    parse_reflection,
)

# --- extract_json_object --------------------------------------------------------------------


def test_fenced_json_block() -> None:
    reply = 'Here you go:\n```json\n{"a": 1, "b": [1, 2]}\n```\nThanks.'
    assert extract_json_object(reply) == {"a": 1, "b": [1, 2]}


def test_fenced_block_without_language_tag() -> None:
    assert extract_json_object('```\n{"a": 1}\n```') == {"a": 1}


def test_fenced_block_wins_over_other_objects_in_prose() -> None:
    reply = 'Compare {"draft": true} with the final:\n```json\n{"final": 1}\n```'
    assert extract_json_object(reply) == {"final": 1}


def test_bare_object() -> None:
    assert extract_json_object('  {"a": {"b": null}}\n') == {"a": {"b": None}}


def test_prose_around_one_object() -> None:
    reply = 'Sure! My answer is {"a": {"b": 2}, "c": [3]} and I hope it helps.'
    assert extract_json_object(reply) == {"a": {"b": 2}, "c": [3]}


def test_two_objects_are_ambiguous() -> None:
    with pytest.raises(ReplyError, match="2 JSON objects"):
        extract_json_object('First {"a": 1} then {"b": 2}.')


@pytest.mark.parametrize("reply", ["", "no json here", "[1, 2, 3]", "```json\n[1]\n```"])
def test_no_object(reply: str) -> None:
    with pytest.raises(ReplyError, match="no JSON object"):
        extract_json_object(reply)


def test_malformed_single_object() -> None:
    with pytest.raises(ReplyError, match="malformed JSON object"):
        extract_json_object('prose {"a": 1,} prose')


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('note: {"rule": "use {braces} carefully"} end', {"rule": "use {braces} carefully"}),
        ('x {"a": "}"} y', {"a": "}"}),
        ('x {"a": "{{{"} y', {"a": "{{{"}),
        ('x {"a": "quote \\" and }"} y', {"a": 'quote " and }'}),
    ],
)
def test_braces_inside_strings_do_not_count(reply: str, expected: dict[str, Any]) -> None:
    assert extract_json_object(reply) == expected


def test_reply_error_is_a_value_error() -> None:
    assert issubclass(ReplyError, ValueError)


# --- parse_reflection -----------------------------------------------------------------------


def reflection_reply(edits: list[dict[str, Any]], **extra: Any) -> str:
    body = {"patch": {"reasoning": "because", "edits": edits}, **extra}
    return "Analysis done.\n```json\n" + json.dumps(body) + "\n```"


def test_reflection_edits_and_defaults() -> None:
    reply = reflection_reply(
        [
            {"op": "append", "content": "Rule A"},
            {"op": " Replace ", "target": "x", "content": "y"},
        ],
        failure_summary=[{"failure_type": "format", "count": 2, "description": "d"}],
    )
    r = parse_reflection(reply, "failure", n_items=3, budget=4)
    assert r.reasoning == "because"
    assert r.truncated == 0
    assert r.edits == [
        Edit(op="append", content="Rule A", support_count=3, source_type="failure"),
        Edit(op="replace", target="x", content="y", support_count=3, source_type="failure"),
    ]
    assert r.failure_summary == [{"failure_type": "format", "count": 2, "description": "d"}]
    assert r.success_patterns == []


def test_reflection_truncates_to_budget_and_counts() -> None:
    edits = [{"op": "append", "content": f"rule {i}"} for i in range(5)]
    r = parse_reflection(reflection_reply(edits), "failure", n_items=2, budget=3)
    assert [e.content for e in r.edits] == ["rule 0", "rule 1", "rule 2"]
    assert r.truncated == 2


def test_reflection_budget_zero_keeps_nothing() -> None:
    edits = [{"op": "append", "content": "a"}, {"op": "append", "content": "b"}]
    r = parse_reflection(reflection_reply(edits), "failure", n_items=2, budget=0)
    assert (r.edits, r.truncated) == ([], 2)


def test_reflection_support_count_defaults_to_number_of_items_not_reported_batch_size() -> None:
    reply = reflection_reply([{"op": "append", "content": "a"}], batch_size=40)
    assert parse_reflection(reply, "failure", n_items=5, budget=4).edits[0].support_count == 5


def test_reflection_support_count_at_least_one() -> None:
    reply = reflection_reply([{"op": "append", "content": "a"}])
    assert parse_reflection(reply, "success", n_items=0, budget=4).edits[0].support_count == 1


def test_reflection_keeps_valid_reported_support_and_source() -> None:
    reply = reflection_reply(
        [
            {"op": "append", "content": "a", "support_count": 7, "source_type": "success"},
            {"op": "append", "content": "b", "support_count": -2, "source_type": "bogus"},
            {"op": "append", "content": "c", "support_count": 0},
        ]
    )
    edits = parse_reflection(reply, "failure", n_items=4, budget=5).edits
    assert [(e.support_count, e.source_type) for e in edits] == [
        (7, "success"),
        (4, "failure"),  # negative count -> default; unknown source -> caller's source_type
        (0, "failure"),
    ]


def test_reflection_source_type_comes_from_the_minibatch() -> None:
    reply = reflection_reply([{"op": "append", "content": "a"}], success_patterns=["p1", "p2"])
    r = parse_reflection(reply, "success", n_items=1, budget=1)
    assert r.edits[0].source_type == "success"
    assert r.success_patterns == ["p1", "p2"]


def test_reflection_without_patch_is_an_error() -> None:
    with pytest.raises(ReplyError, match="patch"):
        parse_reflection('{"edits": []}', "failure", n_items=1, budget=1)


def test_reflection_edit_without_op_is_an_error() -> None:
    with pytest.raises(ReplyError, match=r"patch\.edits\.0\.op"):
        parse_reflection(reflection_reply([{"content": "a"}]), "failure", n_items=1, budget=1)


def test_reflection_with_no_json_is_an_error() -> None:
    with pytest.raises(ReplyError, match="no JSON object"):
        parse_reflection("I could not find any problem.", "failure", n_items=1, budget=1)


# --- parse_ranking --------------------------------------------------------------------------


def ranking_reply(indices: list[Any], reasoning: str = "r") -> str:
    return json.dumps({"reasoning": reasoning, "selected_indices": indices})


def test_ranking_keeps_priority_order() -> None:
    r = parse_ranking(ranking_reply([3, 0, 2]), n_edits=5, budget=3)
    assert r.selected == [3, 0, 2]
    assert r.invalid == []
    assert r.raw_indices == [3, 0, 2]
    assert r.reasoning == "r"


def test_ranking_lists_invalid_indices() -> None:
    raw: list[Any] = [2, 2, True, False, -1, 5, "1", 1.0, None, 0]
    r = parse_ranking(ranking_reply(raw), n_edits=5, budget=4)
    assert r.selected == [2, 0]
    # duplicate, bools, negative, out of range, string, float, null
    assert r.invalid == [2, True, False, -1, 5, "1", 1.0, None]
    assert r.raw_indices == raw


def test_ranking_drops_indices_over_budget() -> None:
    r = parse_ranking(ranking_reply([4, 1, 0, 3]), n_edits=5, budget=2)
    assert r.selected == [4, 1]
    assert 0 not in r.selected and 3 not in r.selected
    assert r.raw_indices == [4, 1, 0, 3]


def test_ranking_with_no_valid_index_is_an_error() -> None:
    with pytest.raises(ReplyError, match="no valid index"):
        parse_ranking(ranking_reply([9, True, "0", -1]), n_edits=3, budget=2)


def test_ranking_with_empty_selection_is_an_error() -> None:
    with pytest.raises(ReplyError, match="no valid index"):
        parse_ranking(ranking_reply([]), n_edits=3, budget=2)


def test_ranking_with_no_edits_is_empty_not_an_error() -> None:
    r = parse_ranking(ranking_reply([]), n_edits=0, budget=2)
    assert (r.selected, r.invalid) == ([], [])


def test_ranking_missing_field_is_an_error() -> None:
    with pytest.raises(ReplyError, match="selected_indices"):
        parse_ranking('{"reasoning": "x"}', n_edits=3, budget=2)


# --- validate_config ------------------------------------------------------------------------

MINIMAL: dict[str, Any] = {"env": {"name": "sim", "skill_init": "x.md"}}


def with_(**sections: dict[str, Any]) -> dict[str, Any]:
    return {**MINIMAL, **sections}


def test_minimal_config_gets_defaults() -> None:
    cfg = validate_config(MINIMAL)
    assert isinstance(cfg, SkilloptConfig)
    assert cfg.env.name == "sim"
    assert cfg.env.skill_init == "x.md"
    assert cfg.train.num_epochs == 4
    assert cfg.optimizer.learning_rate == 4
    assert cfg.optimizer.min_learning_rate == 2
    assert cfg.optimizer.lr_scheduler == "cosine"
    assert cfg.evaluation.use_gate is True
    assert cfg.evaluation.gate_metric == "hard"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (with_(train={"bogus": 1}), "train.bogus"),
        (with_(models={"target": {"bogus": 1}}), "models.target.bogus"),
        ({**MINIMAL, "bogus": {}}, "bogus"),
    ],
)
def test_unknown_key_names_the_dotted_path(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(data)
    assert str(info.value) == f"{where}: unknown key"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (with_(train={"num_epochs": "3"}), "train.num_epochs"),
        (with_(train={"batch_size": True}), "train.batch_size"),
        (with_(train={"seed": 1.5}), "train.seed"),
        (with_(evaluation={"use_gate": "yes"}), "evaluation.use_gate"),
        (with_(evaluation={"gate_metric": "f1"}), "evaluation.gate_metric"),
        (with_(optimizer={"lr_scheduler": "step"}), "optimizer.lr_scheduler"),
        (with_(train=[1]), "train"),
    ],
)
def test_wrong_type_names_the_key(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{where}: "):
        validate_config(data)


def test_wrong_type_shows_the_value() -> None:
    with pytest.raises(ConfigError, match=r"train\.num_epochs: .*\(got '3'\)"):
        validate_config(with_(train={"num_epochs": "3"}))


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match=r"^env\.skill_init: required key is missing$"):
        validate_config({"env": {"name": "sim"}})
    with pytest.raises(ConfigError, match=r"^env: required key is missing$"):
        validate_config({})


def test_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        validate_config(["train"])


def test_min_learning_rate_above_learning_rate_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"min_learning_rate \(3\) exceeds learning_rate \(2\)"):
        validate_config(with_(optimizer={"learning_rate": 2, "min_learning_rate": 3}))


def test_min_learning_rate_equal_to_learning_rate_is_fine() -> None:
    cfg = validate_config(with_(optimizer={"learning_rate": 3, "min_learning_rate": 3}))
    assert (cfg.optimizer.learning_rate, cfg.optimizer.min_learning_rate) == (3, 3)


@pytest.mark.parametrize("weight", [-0.1, 1.01, 2])
def test_gate_mixed_weight_outside_unit_interval(weight: float) -> None:
    with pytest.raises(ConfigError, match=r"^evaluation\.gate_mixed_weight: "):
        validate_config(with_(evaluation={"gate_mixed_weight": weight}))


@pytest.mark.parametrize("weight", [0, 0.0, 0.3, 1])
def test_gate_mixed_weight_inside_unit_interval(weight: float) -> None:
    cfg = validate_config(with_(evaluation={"gate_mixed_weight": weight}))
    assert cfg.evaluation.gate_mixed_weight == float(weight)


def test_config_is_frozen() -> None:
    cfg = validate_config(MINIMAL)
    with pytest.raises(ValueError, match="frozen"):
        cfg.train.num_epochs = 9  # type: ignore[misc]


# --- cast_value -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("True", True),
        (" TRUE ", True),
        ("false", False),
        ("False", False),
        ("3", 3),
        ("-2", -2),
        ("0", 0),
        ("2.5", 2.5),
        ("1e3", 1000.0),
        ("cosine", "cosine"),
        ("gpt-4o", "gpt-4o"),
        ("", ""),
    ],
)
def test_cast_value(text: str, expected: Any) -> None:
    value = cast_value(text)
    assert value == expected
    assert type(value) is type(expected)


# --- apply_override -------------------------------------------------------------------------


def test_override_nested_path() -> None:
    data = {"train": {"num_epochs": 4, "seed": 1}, "env": {"name": "sim"}}
    out = apply_override(data, "train.num_epochs=2")
    assert out == {"train": {"num_epochs": 2, "seed": 1}, "env": {"name": "sim"}}


def test_override_does_not_mutate_its_input() -> None:
    data = {"train": {"num_epochs": 4}}
    apply_override(data, "train.num_epochs=2")
    apply_override(data, "models.target.model=x")
    assert data == {"train": {"num_epochs": 4}}


def test_override_creates_sections() -> None:
    out = apply_override({}, "models.optimizer.temperature=0.7")
    assert out == {"models": {"optimizer": {"temperature": 0.7}}}


def test_override_top_level_key_and_value_with_equals() -> None:
    out = apply_override({}, "env.options.flag=a=b")
    assert out == {"env": {"options": {"flag": "a=b"}}}


def test_override_casts_booleans() -> None:
    out = apply_override({"evaluation": {"use_gate": True}}, "evaluation.use_gate=false")
    assert out["evaluation"]["use_gate"] is False


def test_override_refuses_to_descend_into_a_non_section() -> None:
    with pytest.raises(ConfigError, match=r"train\.num_epochs is not a section"):
        apply_override({"train": {"num_epochs": 4}}, "train.num_epochs.deep=1")


def test_override_without_equals() -> None:
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_override({}, "train.num_epochs")


def test_override_with_empty_path() -> None:
    with pytest.raises(ConfigError, match="empty key path"):
        apply_override({}, "=3")


def test_overrides_then_validation_report_the_key() -> None:
    data = apply_override(dict(MINIMAL), "train.bogus=1")
    with pytest.raises(ConfigError, match=r"^train\.bogus: unknown key$"):
        validate_config(data)
    data = apply_override(dict(MINIMAL), "train.num_epochs=2")
    assert validate_config(data).train.num_epochs == 2


def test_ranking_separates_over_budget_from_invalid() -> None:
    r = parse_ranking(ranking_reply([4, 1, 0, 9, 3]), n_edits=5, budget=2)
    assert r.selected == [4, 1]
    assert r.beyond_budget == [0, 3]
    assert r.invalid == [9]


def test_numeric_success_patterns_do_not_sink_the_reflection() -> None:
    reply = json.dumps(
        {
            "success_patterns": [3, "kept format"],
            "patch": {"edits": [{"op": "append", "content": "x"}]},
        }
    )
    parsed = parse_reflection(reply, "success", n_items=2, budget=4)
    assert parsed.success_patterns == ["3", "kept format"]
    assert len(parsed.edits) == 1


def test_quotes_force_a_string_value() -> None:
    assert cast_value('"123"') == "123"
    assert cast_value("'true'") == "true"
    assert cast_value("123") == 123
