"""Issue 16, section 1: where our pure functions differed from the reference trainer's by
accident. Each test states the reference's value, ours as runs recorded before
config_version 3 read it, and the decision: fixed (config_version 3 follows the reference;
older runs keep their rule, so they verify and replay as recorded) or a documented deviation
(README, "Differences from the reference trainer")."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from skillopt.adapters.environments.splits import read_ratio_split, split_counts
from skillopt.machine.config.compat import normalize, to_skillopt
from skillopt.machine.config.schema import (
    CONFIG_VERSION,
    ConfigError,
    recorded_config,
    validate_config,
)
from skillopt.machine.core.edits import Edit
from skillopt.machine.core.events import DensityBonus
from skillopt.machine.decisions import density
from skillopt.machine.decisions.edit_budget import edit_budget
from skillopt.machine.decisions.skilldoc import (
    APPENDIX_END,
    APPENDIX_HEADING,
    APPENDIX_START,
    SLOW_UPDATE_END,
    SLOW_UPDATE_START,
    add_notes,
    appendix_notes,
    apply_edit,
    note_key,
    slow_update_placeholder,
    with_slow_update,
)
from tests.conftest import EXAMPLE, PLAIN, SMALL, Cli, sets
from tests.test_forgery import _forge

S, E = SLOW_UPDATE_START, SLOW_UPDATE_END
ENV = {"env": {"name": "sim", "skill_init": "s.md"}}


def config(**sections: Any) -> Any:
    return validate_config({**ENV, **sections})


# --- config_version: what gates the fixes ------------------------------------------------------


def test_new_runs_get_version_3_and_recorded_runs_keep_theirs() -> None:
    assert CONFIG_VERSION >= 3 and config().parity  # version 4 (issue 14) keeps parity
    assert not recorded_config({**ENV, "config_version": 2}).parity
    assert not recorded_config(dict(ENV)).parity  # recorded before config_version existed: 1


# --- the skill document ---------------------------------------------------------------------


def test_insert_after_layout() -> None:
    edit = Edit(op="insert_after", target="r", content="x")
    reference = "r\n\nx\n"
    assert apply_edit("r\n", edit)[0] == reference  # fixed: version 3
    assert apply_edit("r\n", edit, parity=False)[0] == "r\nx\n"  # versions <= 2
    # on a last line without a newline both layouts agree with the reference
    assert apply_edit("r", edit)[0] == apply_edit("r", edit, parity=False)[0] == "r\nx\n"


def test_slow_update_placeholder_keeps_existing_guidance() -> None:
    skill = f"Body.\n\n{S}\nguidance\n{E}\n"
    assert slow_update_placeholder(skill) == skill  # the reference keeps it: fixed (data loss)
    assert slow_update_placeholder(skill, parity=False) == f"Body.\n\n{S}\n{E}\n"  # emptied
    # a skill without the field gets the empty block in both
    assert slow_update_placeholder("Body.\n") == f"Body.\n\n{S}\n{E}\n"


def test_a_stray_slow_update_end_marker_is_removed() -> None:
    skill = f"Body {E} text.\n\n{S}\nold\n{E}\n"
    # reference: every stray end marker goes with the old regions; fixed
    assert with_slow_update(skill, "new") == f"Body  text.\n\n{S}\nnew\n{E}\n"
    assert E in with_slow_update(skill, "new", parity=False).split(S)[0]  # kept before
    # an unclosed start marker: the reference drops the marker, not the text after it
    assert with_slow_update(f"Keep {S} this.\n", "g") == f"Keep  this.\n\n{S}\ng\n{E}\n"
    assert "this" not in with_slow_update(f"Keep {S} this.\n", "g", parity=False)


def test_appendix_notes_from_every_line_are_kept() -> None:
    skill = (
        f"Body.\n\n{APPENDIX_START}\n{APPENDIX_HEADING}\n* Keep units.\nAlways cite.\n"
        f"{APPENDIX_END}\n"
    )
    text, added, _ = add_notes(skill, ["Check the sign."])
    # reference: both old notes kept, as "- " bullets, then the new one; fixed (data loss)
    assert appendix_notes(text) == ["Keep units.", "Always cite.", "Check the sign."]
    assert "- Keep units.\n- Always cite.\n- Check the sign.\n" in text and added
    old, _, _ = add_notes(skill, ["Check the sign."], parity=False)
    assert appendix_notes(old, parity=False) == ["Check the sign."]  # versions <= 2 lost them


@pytest.mark.parametrize(
    ("a", "b", "reference_same"),
    [("X_", "X", True), ("X-", "x", True), ("X!", "X", False), ("Straße", "STRASSE", True)],
)
def test_note_keys_as_the_reference_keys_them(a: str, b: str, reference_same: bool) -> None:
    # reference: whitespace collapsed, trailing " .;:,_-" stripped, Unicode case folding; fixed
    assert (note_key(a) == note_key(b)) is reference_same
    # versions <= 2: trailing ".!;:, " and lower(): each of these pairs decided the other way
    assert (note_key(a, parity=False) == note_key(b, parity=False)) is not reference_same


def test_existing_duplicate_notes_merge_as_in_the_reference() -> None:
    skill = f"{APPENDIX_START}\n{APPENDIX_HEADING}\n- Cite.\n- cite\n{APPENDIX_END}\n"
    text, added, duplicates = add_notes(skill, ["CITE!", "Units."])
    assert appendix_notes(text) == ["Cite.", "CITE!", "Units."]  # "!" is not trailing noise
    assert (added, duplicates) == (["CITE!", "Units."], 0)


# --- the schedule and the budget ----------------------------------------------------------------


@pytest.mark.parametrize("scheduler", ["linear", "cosine"])
def test_a_one_step_schedule_keeps_the_max(scheduler: str) -> None:
    # reference: its guard `total_steps <= 1` returns the max; fixed
    assert edit_budget(scheduler, 1, 0, 1, 1) == 1
    assert edit_budget(scheduler, 1, 0, 1, 1, parity=False) == 0  # versions <= 2 decayed


def test_lr_scheduler_autonomous_is_999_edits_without_a_call() -> None:
    cfg = config(optimizer={"lr_scheduler": "Autonomous"})
    assert (cfg.optimizer.lr_scheduler, cfg.budget_control) == ("autonomous", "fixed")
    assert edit_budget("autonomous", 4, 2, 3, 10) == 999  # the reference's scheduler value


@pytest.mark.parametrize("spelling", ["none", "off", "no_lr"])
def test_lr_control_none_still_applies_the_schedule_in_patch_and_rewrite(spelling: str) -> None:
    for mode in ("patch", "rewrite"):
        opt = {"lr_control_mode": spelling, "skill_update_mode": mode}
        assert config(optimizer=opt).budget_control == "fixed"  # the reference: fixed
        old = recorded_config({**ENV, "config_version": 2, "optimizer": opt})
        assert old.budget_control == "none"  # versions <= 2 kept every merged edit
    full = {"lr_control_mode": spelling, "skill_update_mode": "full_rewrite"}
    assert config(optimizer=full).budget_control == "none"  # a full rewrite has no budget


# --- data splits ------------------------------------------------------------------------------


def test_largest_remainder_ties_go_to_the_larger_ratio_part() -> None:
    assert split_counts(5, (1, 2, 7), ties_to_larger=True) == (0, 1, 4)  # reference; fixed
    assert split_counts(5, (1, 2, 7)) == (1, 1, 3)  # versions <= 2 (the earlier split)


def test_split_seed_zero_is_a_seed_a_documented_deviation(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"id": f"r{i}", "q": i}) + "\n" for i in range(10)))
    got = read_ratio_split(rows, (1, 1, 1), 0)
    order = list(range(10))
    random.Random(0).shuffle(order)  # ours: 0 shuffles with 0
    assert [r["id"] for r in got.rows["train"]] == [f"r{i}" for i in order[:4]]
    # the reference's `if not split_seed` would fall back to the run seed (42): other rows
    fallback = list(range(10))
    random.Random(42).shuffle(fallback)
    assert fallback[:4] != order[:4]


# --- reference configs ------------------------------------------------------------------------


def reference_config(data: dict[str, Any]) -> Any:
    mapped, _ = to_skillopt(normalize(data))
    return validate_config(mapped)


def test_flat_benchmark_keys_reach_the_environment() -> None:
    cfg = reference_config({"env": "sim", "skill_init": "s.md", "max_turns": 7, "data_dirs": ["a"]})
    assert cfg.env.options == {"max_turns": 7, "data_dirs": ["a"]}  # the reference's pass-through
    # a mapping at the top level is a misspelt section, not a benchmark option: named
    with pytest.raises(ConfigError, match=r"^evaluaton: unknown key$"):
        reference_config({"env": "sim", "skill_init": "s.md", "evaluaton": {"use_gate": True}})


def test_enum_values_in_any_case_and_the_update_mode_aliases() -> None:
    cfg = config(
        evaluation={"gate_metric": " MIXED ", "gate_rule": "Strict", "early_reject_order": "Plan"},
        optimizer={"lr_scheduler": "Cosine", "skill_update_mode": "rewrite_suggestions"},
    )
    assert (cfg.evaluation.gate_metric, cfg.evaluation.gate_rule) == ("mixed", "strict")
    assert cfg.optimizer.skill_update_mode == "rewrite_from_suggestions"
    full = config(optimizer={"skill_update_mode": "Skill_Rewrite_Minibatch"})
    assert full.optimizer.skill_update_mode == "full_rewrite_minibatch"
    assert config(evaluation={"gate_metric": "Soft"}).model_dump()["evaluation"]["gate_metric"] == (
        "soft"  # what run.created records is the normalized value
    )
    # the reference reads an unknown mode as patch; we refuse it (a documented deviation)
    with pytest.raises(ConfigError, match=r"optimizer\.skill_update_mode"):
        config(optimizer={"skill_update_mode": "patchy"})


# --- the semantic-density gate bonus ----------------------------------------------------------


def test_density_counts_leading_words_outside_the_machine_regions() -> None:
    skill = (
        f"You MUST cite. Always check; never guess.\n{S}\nMUST MUST MUST\n{E}\n"
        f"{APPENDIX_START}\nALWAYS\n{APPENDIX_END}\n"
    )
    words = ("MUST", "ALWAYS", "NEVER")
    assert density.counts(skill, words) == (3, 7)  # you must cite always check never guess
    b = density.bonus(skill, words, 0.05)
    assert b == DensityBonus(words=7, leading=3, weight=0.05, bonus=0.05 * (3 / 7))
    assert density.counts("   ", words) == (0, 0) and density.bonus("", words, 0.05).bonus == 0.0
    # an unclosed region loses its marker only, as in the reference
    assert density.counts(f"x {S} MUST", words) == (1, 2)  # "x", "must"


def test_density_config() -> None:
    e = config(evaluation={"use_semantic_density": True}).evaluation
    assert e.words()[:3] == ("MUST", "ALWAYS", "NEVER") and e.semantic_density_weight == 0.05
    with pytest.raises(ConfigError, match=r"^evaluation: .*gate_rule: paired"):
        config(evaluation={"use_semantic_density": True, "gate_rule": "paired"})


DENSITY = sets(
    "evaluation.use_semantic_density=true",
    "evaluation.semantic_density_weight=0.5",
    "evaluation.leading_words=the,a,always",
)


def _payloads(db: Path, type_: str) -> list[tuple[int, dict[str, Any]]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT seq, payload FROM events WHERE type = ? ORDER BY seq", (type_,)
        ).fetchall()
    return [(seq, json.loads(p)) for seq, p in rows]


@pytest.fixture
def density_run(cli: Cli, tmp_path: Path) -> Path:
    db = tmp_path / "d.db"
    res = cli("init", str(EXAMPLE), "--db", str(db), "--name", "d", *SMALL, *PLAIN, *DENSITY)
    assert res.code == 0, res.err
    res = cli("run", "--db", str(db))
    assert res.code == 0, res.err
    return db


def test_a_v3_run_with_density_records_and_verifies_it(cli: Cli, density_run: Path) -> None:
    created = _payloads(density_run, "run.created")[0][1]
    assert created["config"]["config_version"] == CONFIG_VERSION  # 3 or later
    base = _payloads(density_run, "baseline.evaluated")[0][1]
    assert (
        base["density"]["bonus"] > 0
        and base["gate_score"] == base["hard"] + base["density"]["bonus"]
    )
    verdicts = _payloads(density_run, "gate.decided")
    assert verdicts
    evaluated = {p["step"]: p for _, p in _payloads(density_run, "candidate.evaluated")}
    for _, g in verdicts:
        e = evaluated[g["step"]]
        assert g["density"] == e["density"] and g["candidate_score"] == e["gate_score"]
        assert e["gate_score"] == e["hard"] + e["density"]["bonus"]
        assert "semantic-density bonus" in g["rule"]
    res = cli("replay", "--db", str(density_run), "--verify", "--json")
    assert res.code == 0 and res.json()["verified"] is True, res.out


@pytest.mark.parametrize(
    ("type_", "change"),
    [
        # a verdict claiming a bigger bonus than the candidate's evaluation measured
        ("gate.decided", lambda p: {**p, "density": {**p["density"], "bonus": 0.9}}),
        # an evaluation claiming leading words the skill's text does not hold
        (
            "candidate.evaluated",
            lambda p: {**p, "density": {**p["density"], "leading": p["density"]["leading"] + 1}},
        ),
        # a verdict recorded without the bonus the config asks for
        ("gate.decided", lambda p: {k: v for k, v in p.items() if k != "density"}),
    ],
)
def test_a_forged_density_is_caught(cli: Cli, density_run: Path, type_: str, change: Any) -> None:
    seq = _forge(density_run, type_, change)
    res = cli("replay", "--db", str(density_run), "--verify", "--json")
    assert res.code == 1, res.out
    assert res.json()["problem"]["seq"] == seq, res.out


def test_bad_reference_config_is_one_line_exit_2(cli: Cli, tmp_path: Path) -> None:
    # a flat key the environment does not know is named by the environment
    cfg = tmp_path / "ref.yaml"
    skill = tmp_path / "s.md"
    skill.write_text("Be brief.\n")
    cfg.write_text("env: sim\nskill_init: s.md\nmax_turns: 7\n")
    res = cli("init", str(cfg), "--db", str(tmp_path / "x.db"))
    assert res.code == 2
    assert "env.options.max_turns" in res.err and len(res.err.strip().splitlines()) == 1
    res = cli(
        "init",
        str(EXAMPLE),
        "--db",
        str(tmp_path / "y.db"),
        *sets("evaluation.use_semantic_density=true", "evaluation.gate_rule=paired"),
    )
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1
    assert "evaluation" in res.err and "paired" in res.err
    assert not (tmp_path / "x.db").exists() or not _payloads(tmp_path / "x.db", "run.created")


@pytest.mark.parametrize("change", ["evaluation.semantic_density_weight=0.1", "config_version=2"])
def test_a_fork_keeps_the_gate_scale_and_the_rules(
    cli: Cli, density_run: Path, change: str
) -> None:
    # the recorded scores include the bonus, and every decision was derived with version 3
    res = cli("fork", "--db", str(density_run), "--at", "40", "--name", "f", "--set", change)
    assert res.code == 2 and "fork refused" in res.err and change.split("=")[0] in res.err


def test_a_run_recorded_before_version_3_resumes_under_its_own_rules(tmp_path: Path) -> None:
    import skillopt

    db = tmp_path / "r.db"
    small = {"env.options.train": 12, "env.options.selection": 12, "env.options.test": 12}
    args = {**small, "train.batch_size": 6, "optimizer.use_slow_update": False}
    # recorded as the previous release records it, then stopped part way
    skillopt.train(
        EXAMPLE, db=db, name="old", overrides={**args, "config_version": 2}, max_stages=4
    )
    # the same config file with this release: resumed (not refused for its config_version or
    # the keys added since), and it goes on with the rules it was recorded with
    run = skillopt.train(EXAMPLE, db=db, name="old", overrides=args)
    assert run.status()["phase"] == "done"
    created = run.events("run.created")[0]["payload"]
    assert created["config"]["config_version"] == 2
    with pytest.raises(skillopt.InputError, match="train.seed"):
        skillopt.train(EXAMPLE, db=db, name="old", overrides={**args, "train.seed": 7})
