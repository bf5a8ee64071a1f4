"""The pure parts of the issue-3 mechanisms, one function at a time (no CLI, no ledger).

skilldoc's machine-owned regions, the step buffer, the epoch-end review, the candidate
decisions, config aliases and the offline model's mode answers. States are folded by the
reducer from hand-built events. Reference: trainer-semantics.md sections 2.4-2.9.
"""

from __future__ import annotations

from typing import Any

import pytest

from skillopt.adapters.models import offline_modes as om
from skillopt.machine.config.schema import (
    ConfigError,
    OptimizerConfig,
    recorded_config,
    validate_config,
)
from skillopt.machine.core import events as ev
from skillopt.machine.core.edits import Edit, SkillCandidate, Suggestion
from skillopt.machine.core.state import ItemScore, TrainerState
from skillopt.machine.decisions.review import category, pairs, pending, plan_review, window
from skillopt.machine.decisions.skilldoc import (
    APPENDIX_END,
    APPENDIX_HEADING,
    APPENDIX_START,
    SLOW_UPDATE_END,
    SLOW_UPDATE_START,
    add_notes,
    appendix_notes,
    note_key,
    region_body,
    restore_protected,
    strip_region,
    with_appendix,
    with_slow_update,
)
from skillopt.machine.loop import transitions as tr
from skillopt.machine.loop.reducer import reduce
from skillopt.machine.loop.transitions import (
    CompleteEpoch,
    CompleteStep,
    EvaluateCandidate,
    FinalSelection,
    FlushAppendix,
    Gate,
    GateUpdate,
    Merge,
    MetaSkill,
    PlanEpoch,
    PlanReview,
    ReviewRollout,
    RolloutTrain,
    Select,
    SkipStep,
    SlowUpdate,
    Update,
    appendix_notes_due,
    next_budget,
    next_command,
)
from skillopt.machine.optimizer.replies_memory import RewriteReply
from skillopt.machine.optimizer.step_buffer import buffer_text, fail_group, step_buffer
from skillopt.machine.stages.update import clamp_budget, rewrite_outcome

H0 = "a0" * 32  # the initial skill
H1 = "b1" * 32
H2 = "c2" * 32
CALL = ev.CallRecord(prompt_hash="p" * 64, response_hash="r" * 64, model="offline")
EDIT = Edit(op="append", content="Always state the units.")

SLOW = f"{SLOW_UPDATE_START}\nold guidance\n{SLOW_UPDATE_END}"
APPX = f"{APPENDIX_START}\n{APPENDIX_HEADING}\n- Re-read the rule.\n{APPENDIX_END}"
# A parent skill with both machine-owned regions after its body.
PARENT = f"# Skill\n\nRule one.\n\n{SLOW}\n\n{APPX}\n"


# --- skilldoc: strip_region / region_body -----------------------------------------------------


def test_strip_region_removes_every_region_and_collapses_blank_runs() -> None:
    text = f"# S\n\nrule\n\n{SLOW}\n\nmiddle\n\n{SLOW_UPDATE_START}\nx\n{SLOW_UPDATE_END}\n"
    assert strip_region(text, SLOW_UPDATE_START, SLOW_UPDATE_END) == "# S\n\nrule\n\nmiddle\n"
    # The other region is left alone.
    assert (
        strip_region(PARENT, SLOW_UPDATE_START, SLOW_UPDATE_END)
        == f"# Skill\n\nRule one.\n\n{APPX}\n"
    )


def test_strip_region_of_an_unclosed_region_runs_to_the_end() -> None:
    text = f"A\n{SLOW_UPDATE_START}\nunclosed\nmore"
    assert strip_region(text, SLOW_UPDATE_START, SLOW_UPDATE_END) == "A\n"
    assert strip_region("no regions\n", SLOW_UPDATE_START, SLOW_UPDATE_END) == "no regions\n"


def test_region_body_is_the_first_region_stripped_or_none() -> None:
    assert region_body(PARENT, SLOW_UPDATE_START, SLOW_UPDATE_END) == "old guidance"
    assert region_body(PARENT, APPENDIX_START, APPENDIX_END) == (
        f"{APPENDIX_HEADING}\n- Re-read the rule."
    )
    assert region_body("# plain\n", APPENDIX_START, APPENDIX_END) is None
    two = f"{SLOW}\n{SLOW_UPDATE_START}\nsecond\n{SLOW_UPDATE_END}"
    assert region_body(two, SLOW_UPDATE_START, SLOW_UPDATE_END) == "old guidance"
    unclosed = f"x\n{SLOW_UPDATE_START}\n tail \n"
    assert region_body(unclosed, SLOW_UPDATE_START, SLOW_UPDATE_END) == "tail"


# --- skilldoc: with_slow_update ---------------------------------------------------------------


def test_slow_update_epoch_one_appends_an_empty_block() -> None:
    out = with_slow_update("# S\n\nrule\n", "")
    assert out == f"# S\n\nrule\n\n{SLOW_UPDATE_START}\n{SLOW_UPDATE_END}\n"
    assert region_body(out, SLOW_UPDATE_START, SLOW_UPDATE_END) == ""


def test_slow_update_replaces_every_block_with_one_at_the_end() -> None:
    text = f"# S\n\n{SLOW}\n\nmiddle\n\n{SLOW_UPDATE_START}\nolder\n{SLOW_UPDATE_END}\n"
    out = with_slow_update(text, "  new guidance  ")
    assert out == f"# S\n\nmiddle\n\n{SLOW_UPDATE_START}\nnew guidance\n{SLOW_UPDATE_END}\n"
    assert out.count(SLOW_UPDATE_START) == 1 and out.count(SLOW_UPDATE_END) == 1


def test_slow_update_content_loses_its_markers() -> None:
    content = f"keep {APPENDIX_END}this{SLOW_UPDATE_END}\n{SLOW_UPDATE_START}"
    out = with_slow_update("# S\n", content)
    assert out == f"# S\n\n{SLOW_UPDATE_START}\nkeep this\n{SLOW_UPDATE_END}\n"
    assert APPENDIX_END not in out
    # Content that is only markers is an empty block.
    assert with_slow_update("# S\n", SLOW_UPDATE_END) == with_slow_update("# S\n", "")


def test_slow_update_keeps_the_appendix_region_intact() -> None:
    out = with_slow_update(PARENT, "g2")
    assert APPX in out
    assert region_body(out, SLOW_UPDATE_START, SLOW_UPDATE_END) == "g2"
    assert out.endswith(f"{APPX}\n\n{SLOW_UPDATE_START}\ng2\n{SLOW_UPDATE_END}\n")


# --- skilldoc: notes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, parity",
    [
        ("Check the units.", "check the units", True),
        ("  Check   the\tunits  ", "CHECK THE UNITS", True),
        ("Check the units;,:_-", "check the units", True),  # the reference's trailing set
        ("Check the units!;,:", "check the units", False),  # config_version <= 2's set
        ("Check the units . ", "check the units", True),
        ("Check the units . ", "check the units", False),
    ],
)
def test_note_key_ignores_case_spacing_and_trailing_punctuation(
    a: str, b: str, parity: bool
) -> None:
    assert note_key(a, parity) == note_key(b, parity) == "check the units"


def test_note_key_keeps_inner_punctuation_and_other_words() -> None:
    assert note_key("Use a.b notation") == "use a.b notation"
    assert note_key("Check the units?") != note_key("Check the units")  # '?' is not trailing noise
    assert note_key("Check units") != note_key("Check the units")


def test_add_notes_creates_the_region_when_absent() -> None:
    text, added, dups = add_notes("# S\n\nrule\n", ["Re-read the rule.", "Cite sources"])
    assert text == (
        f"# S\n\nrule\n\n{APPENDIX_START}\n{APPENDIX_HEADING}\n"
        f"- Re-read the rule.\n- Cite sources\n{APPENDIX_END}\n"
    )
    assert (added, dups) == (["Re-read the rule.", "Cite sources"], 0)


def test_add_notes_deduplicates_against_the_appendix_and_within_the_batch() -> None:
    notes = ["re-read the RULE", "New note.", "new  note", "Another one!"]
    text, added, dups = add_notes(PARENT, notes)
    assert added == ["New note.", "Another one!"]
    assert dups == 2
    assert appendix_notes(text) == ["Re-read the rule.", "New note.", "Another one!"]
    # The rest of the document is untouched; the region stays where it was.
    assert text.startswith(f"# Skill\n\nRule one.\n\n{SLOW}\n\n{APPENDIX_START}\n")


def test_add_notes_all_duplicates_leaves_the_text_unchanged() -> None:
    text, added, dups = add_notes(PARENT, ["Re-read the rule", "RE-READ THE RULE."])
    assert (text, added, dups) == (PARENT, [], 2)


def test_add_notes_keys_on_the_note_as_written_without_markers() -> None:
    # A note carrying a marker string is the same note once the marker is removed.
    text, added, dups = add_notes(PARENT, [f"Re-read the rule {APPENDIX_END}"])
    assert (text, added, dups) == (PARENT, [], 1)
    assert appendix_notes(text) == ["Re-read the rule."]


def test_add_notes_keeps_a_multiline_note_whole() -> None:
    text, added, _ = add_notes(PARENT, ["First check units,\nthen the sign."])
    assert appendix_notes(text) == ["Re-read the rule.", "First check units, then the sign."]
    assert added == ["First check units, then the sign."]
    # A later flush rebuilds the region from what it reads: nothing of the note is lost.
    later, _, _ = add_notes(text, ["Third."])
    assert appendix_notes(later) == [
        "Re-read the rule.",
        "First check units, then the sign.",
        "Third.",
    ]
    assert "then the sign." in later.split(APPENDIX_START)[1]


def test_appendix_notes_reads_bullets_of_the_region_only() -> None:
    text = (
        f"- not a note\n{APPENDIX_START}\n{APPENDIX_HEADING}\n- one\nprose\n-  two \n-\n- \n"
        f"{APPENDIX_END}\n- outside\n"
    )
    # config_version 3 reads every non-heading line, as the reference (a lone "-" is no note)
    assert appendix_notes(text) == ["one", "prose", "two"]
    assert appendix_notes(text, parity=False) == ["one", "two"]  # runs recorded before
    assert appendix_notes("# no appendix\n- bullet\n") == []


def test_with_appendix_replaces_the_region_in_place() -> None:
    out = with_appendix(PARENT, ["merged note", f"{APPENDIX_START}", "  "])
    assert out == (
        f"# Skill\n\nRule one.\n\n{SLOW}\n\n"
        f"{APPENDIX_START}\n{APPENDIX_HEADING}\n- merged note\n{APPENDIX_END}\n"
    )
    empty = with_appendix("# S\n", [])
    assert empty == f"# S\n\n{APPENDIX_START}\n{APPENDIX_HEADING}\n{APPENDIX_END}\n"
    assert appendix_notes(empty) == []
    # A consolidated note spanning lines is stored, and read back, as one bullet.
    assert appendix_notes(with_appendix("# S\n", ["a\n  b", "c"])) == ["a b", "c"]


# --- skilldoc: restore_protected --------------------------------------------------------------

BODY_PLUS_REGIONS = f"# Skill v2\n\nRule two.\n\n{SLOW}\n\n{APPX}\n"


def test_restore_protected_brings_back_dropped_regions() -> None:
    assert restore_protected(PARENT, "# Skill v2\n\nRule two.\n") == BODY_PLUS_REGIONS


def test_restore_protected_undoes_altered_regions() -> None:
    forged = (
        f"# Skill v2\n\n{APPENDIX_START}\n- forged note\n{APPENDIX_END}\n\nRule two.\n\n"
        f"{SLOW_UPDATE_START}\nrewritten guidance\n{SLOW_UPDATE_END}\n"
    )
    assert restore_protected(PARENT, forged) == BODY_PLUS_REGIONS


def test_restore_protected_drops_duplicated_regions_and_stray_markers() -> None:
    doubled = f"# Skill v2\n\n{SLOW}\n\nRule two.\n\n{SLOW}\n\n{APPX}\n\n{APPX}\n{APPENDIX_END}"
    out = restore_protected(PARENT, doubled)
    assert out == BODY_PLUS_REGIONS
    for marker in (SLOW_UPDATE_START, SLOW_UPDATE_END, APPENDIX_START, APPENDIX_END):
        assert out.count(marker) == 1


def test_restore_protected_without_parent_regions_keeps_only_the_body() -> None:
    assert restore_protected("# plain\n", f"new body {APPENDIX_END}\n") == "new body\n"
    assert restore_protected("# plain\n", f"new\n\n{APPX}\n") == "new\n"


# --- candidates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "requested, available, expected", [(5, 3, 3), (2, 3, 2), (0, 3, 0), (-1, 3, 0), (4, 0, 0)]
)
def test_clamp_budget(requested: int, available: int, expected: int) -> None:
    assert clamp_budget(requested, available) == expected


def test_rewrite_outcome_unusable_reply_keeps_the_parent() -> None:
    record, text = rewrite_outcome(None, "new_skill is empty", PARENT, CALL, None)
    assert text == PARENT
    assert (record.ok, record.error, record.call, record.reask) == (
        False,
        "new_skill is empty",
        CALL,
        None,
    )
    assert (record.reasoning, record.change_summary) == ("", [])


def test_rewrite_outcome_usable_reply_is_the_body_under_the_parent_regions() -> None:
    reply = RewriteReply("why", ["tightened rule"], f"# Skill v2\n\nRule two.\n\n{APPENDIX_START}")
    record, text = rewrite_outcome(reply, "", PARENT, CALL, CALL)
    assert text == BODY_PLUS_REGIONS
    assert (record.ok, record.error, record.reasoning, record.change_summary) == (
        True,
        "",
        "why",
        ["tightened rule"],
    )
    assert record.reask == CALL


# --- event builders for folded states ---------------------------------------------------------


def created(optimizer: dict[str, Any], epochs: int = 1) -> ev.RunCreated:
    config = {
        "env": {"name": "sim", "skill_init": "x.md"},
        "train": {"num_epochs": epochs, "batch_size": 4},
        "optimizer": optimizer,
    }
    return ev.RunCreated(
        run_name="t",
        config=config,
        config_sha256="0" * 64,
        initial_skill_hash=H0,
        skillopt_version="0.1.0",
    )


def loaded(steps_per_epoch: int, total_steps: int) -> ev.DatasetLoaded:
    return ev.DatasetLoaded(
        env="sim",
        train=[f"t{i}" for i in range(1, 9)],
        selection=["s1", "s2", "s3"],
        test=["x1"],
        task_types=["rules"],
        fingerprints={},
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
    )


def baseline() -> ev.BaselineEvaluated:
    return ev.BaselineEvaluated(
        skill_hash=H0, n=3, hard=0.5, soft=0.5, metric="hard", gate_score=0.5
    )


def planned(epoch: int, first_step: int, steps: list[list[str]]) -> ev.EpochPlanned:
    return ev.EpochPlanned(epoch=epoch, first_step=first_step, seed=1, steps=[[s] for s in steps])


def train(step: int, item: str, fail_reason: str) -> ev.RolloutScored:
    """A train rollout: failed when fail_reason is non-empty."""
    return ev.RolloutScored(
        phase="train",
        step=step,
        skill_hash=H0,
        item_id=item,
        hard=0.0 if fail_reason else 1.0,
        soft=0.0 if fail_reason else 1.0,
        fail_reason=fail_reason,
        task_type="rules",
        trajectory_hash="tr",
    )


def reviewed(skill: str, item: str, hard: float) -> ev.RolloutScored:
    return ev.RolloutScored(
        phase="review",
        step=0,
        skill_hash=skill,
        item_id=item,
        hard=hard,
        soft=hard,
        fail_reason="" if hard else "wrong: x",
        task_type="rules",
        trajectory_hash="tr",
    )


def reflected(step: int, epoch: int, summary: list[dict[str, Any]]) -> list[ev.Event]:
    """One failure minibatch whose reflection proposes EDIT with `summary`."""
    return [
        ev.ReflectionPlanned(
            step=step,
            epoch=epoch,
            skill_hash=H0,
            rollout_n=4,
            rollout_hard=0.25,
            rollout_soft=0.25,
            n_failures=3,
            n_successes=1,
            seed=3,
            minibatches=[ev.Minibatch(id="m1", source_type="failure", item_ids=["t1"])],
        ),
        ev.ReflectionProposed(
            step=step,
            minibatch_id="m1",
            source_type="failure",
            item_ids=["t1"],
            ok=True,
            edits=[EDIT],
            failure_summary=summary,
            call=CALL,
        ),
    ]


def gated_step(
    step: int, epoch: int, action: str, current: float, candidate: float, cand: str
) -> list[ev.Event]:
    """Merge, select, build, evaluate and decide a step whose reflection is already folded."""
    row = ev.ApplyRow(index=1, op="append", target="", content_preview="x", status="applied_append")
    keeps = action != "reject"
    return [
        ev.PatchesMerged(step=step, nodes=[], root="n", edits=[EDIT]),
        ev.EditsSelected(
            step=step,
            scheduler="constant",
            schedule_t=step,
            schedule_total=4,
            budget=4,
            n_merged=1,
            kept_indices=[0],
            dropped_indices=[],
            edits=[EDIT],
        ),
        ev.CandidateBuilt(
            step=step,
            parent_hash=H0,
            candidate_hash=cand,
            report=[row],
            n_applied=1,
            n_skipped=0,
            length=10,
        ),
        ev.CandidateEvaluated(
            step=step,
            skill_hash=cand,
            n=3,
            hard=candidate,
            soft=candidate,
            metric="hard",
            gate_score=candidate,
            cache_hit=False,
        ),
        ev.GateDecided(
            step=step,
            epoch=epoch,
            candidate_hash=cand,
            action=action,  # type: ignore[arg-type]
            metric="hard",
            use_gate=True,
            candidate_score=candidate,
            current_score=current,
            best_score=current,
            rule="strict",
        ),
        ev.StepCompleted(
            step=step,
            epoch=epoch,
            action=action,
            current_hash=cand if keeps else H0,
            current_score=candidate if keeps else current,
            best_hash=cand if keeps else H0,
            best_score=candidate if keeps else current,
            best_step=step if keeps else 0,
        ),
    ]


# --- step buffer ------------------------------------------------------------------------------

# The reflection lists its groups in another order than the fail_reason groups sort in
# (format x2 first, then arithmetic, then missing_units): a positional pairing would put
# "adds wrong" on format.
SUMMARY = [
    {"failure_type": "arithmetic", "count": 1, "description": "adds wrong"},
    {"failure_type": "Missing Units", "count": 1, "description": "forgets units"},
    {"failure_type": "FORMAT", "count": 2, "description": "extra prose around the answer"},
]
STEP1_ITEMS = {
    "t1": "format: extra text",
    "t2": "format: trailing prose",
    "t3": "arithmetic: off by one",
    "t4": "",
}


def buffered_run(use_step_buffer: bool = True) -> list[ev.Event]:
    """Two epochs of two steps: step 1 rejected, step 2 accepted, then epoch 2 opened."""
    events: list[ev.Event] = [
        created({"use_step_buffer": use_step_buffer}, epochs=2),
        loaded(steps_per_epoch=2, total_steps=4),
        baseline(),
        planned(1, 1, [["t1", "t2", "t3", "t4"], ["t5", "t6"]]),
        *(train(1, i, r) for i, r in STEP1_ITEMS.items()),
        *reflected(1, 1, SUMMARY),
        *gated_step(1, 1, "reject", current=0.5, candidate=0.4, cand=H1),
        train(2, "t5", "missing_units: no unit"),
        train(2, "t6", ""),
        *reflected(2, 1, []),
        *gated_step(2, 1, "accept_new_best", current=0.5, candidate=0.7, cand=H2),
    ]
    return events


STEP1_DONE = 16  # buffered_run()[:STEP1_DONE]: step 1 completed, step 2 open
STEP2_REFLECT = 18  # the index of step 2's reflection.planned


def test_fail_group_is_the_prefix_before_the_first_colon() -> None:
    assert fail_group("format: missing: units") == "format"
    assert fail_group("  timeout ") == "timeout"
    assert fail_group("") == "unknown"
    assert fail_group(": nothing before") == "unknown"


def test_step_buffer_matches_descriptions_by_group_not_by_position() -> None:
    state = reduce(buffered_run()[:STEP1_DONE])
    assert state.progress is not None and state.progress.step == 2
    (entry,) = step_buffer(state, 1, 2)
    assert [(p.group, p.description, p.count, p.task_ids) for p in entry.patterns] == [
        ("format", "extra prose around the answer", 2, ("t1", "t2")),
        ("arithmetic", "adds wrong", 1, ("t3",)),
    ]
    assert (entry.step, entry.action, entry.n_total, entry.n_fail) == (1, "reject", 4, 3)


def test_step_buffer_rejected_edits_and_scores_only_on_reject() -> None:
    state = reduce(buffered_run())
    rejected, accepted = step_buffer(state, 1, 3)
    assert (rejected.score_before, rejected.score_after) == (0.5, 0.4)
    assert rejected.rejected == (EDIT.summary(160),)
    assert (accepted.action, accepted.score_before, accepted.score_after) == (
        "accept_new_best",
        None,
        None,
    )
    assert accepted.rejected == ()


def test_step_buffer_text_renders_patterns_and_rejections() -> None:
    state = reduce(buffered_run())
    text = buffer_text(state, 3)
    assert text == ""  # step 3 opens epoch 2: the buffer is reset
    text = buffer_text(reduce(buffered_run()[:STEP1_DONE]), 2)  # step 2, epoch 1
    lines = text.splitlines()
    assert lines[1:] == [
        "### Step 1: reject (3/4 failed)",
        "- format: extra prose around the answer (x2; tasks t1, t2)",
        "- arithmetic: adds wrong (x1; tasks t3)",
        "  Rejected (score 0.5000 -> 0.4000):",
        f"  1. {EDIT.summary(160)}",
    ]


def test_from_version_4_the_buffer_shows_no_candidate_score() -> None:
    # early reject measures a rejected candidate on part of the split only: a prompt must not
    # read its score, or the run would take another path than a full pass
    events = buffered_run()
    v4 = events[0].model_copy(update={"config": {**events[0].config, "config_version": 4}})
    state = reduce([v4, *events[1:STEP1_DONE]])
    (entry,) = step_buffer(state, 1, 2)
    assert (entry.score_before, entry.score_after, entry.stopped_early) == (0.5, None, False)
    assert entry.rejected == (EDIT.summary(160),)
    lines = buffer_text(state, 2).splitlines()
    assert "  Rejected by the gate (the current skill scores 0.5000):" in lines
    assert not any("0.4000" in line for line in lines)


def test_step_buffer_matches_labels_across_case_underscores_and_hyphens() -> None:
    (pattern,) = step_buffer(reduce(buffered_run()), 1, 3)[1].patterns
    # Step 2's reflection has no failure summary: its group stays undescribed.
    assert (pattern.group, pattern.description, pattern.count) == ("missing_units", "", 1)
    events = buffered_run()
    summary = [{"failure_type": "Missing-Units", "description": "forgets units"}]
    step2 = [*events[:STEP2_REFLECT], *reflected(2, 1, summary), *events[STEP2_REFLECT + 2 :]]
    (pattern,) = step_buffer(reduce(step2), 1, 3)[1].patterns
    assert (pattern.group, pattern.description, pattern.task_ids) == (
        "missing_units",
        "forgets units",
        ("t5",),
    )


def test_step_buffer_is_reset_per_epoch() -> None:
    state = reduce(buffered_run())
    assert [e.step for e in step_buffer(state, 1, 3)] == [1, 2]
    assert [e.step for e in step_buffer(state, 1, 2)] == [1]
    assert step_buffer(state, 2, 3) == []


def test_buffer_text_is_empty_when_the_step_buffer_is_off() -> None:
    on = reduce(buffered_run()[:STEP1_DONE])
    off = reduce(buffered_run(use_step_buffer=False)[:STEP1_DONE])
    assert buffer_text(on, 2).startswith("Earlier steps of this epoch")
    assert buffer_text(off, 2) == ""
    assert len(step_buffer(off, 1, 2)) == 1  # derivable still; just not shown


# --- review ---------------------------------------------------------------------------------


def score(hard: float) -> ItemScore:
    return ItemScore("i", hard, hard, "", "rules", "tr", {}, 0)


@pytest.mark.parametrize(
    "prev, curr, expected",
    [
        (1.0, 1.0, "stable_success"),
        (0.0, 0.0, "persistent_fail"),
        (0.0, 1.0, "improved"),
        (1.0, 0.0, "regressed"),
    ],
)
def test_category(prev: float, curr: float, expected: str) -> None:
    assert category(score(prev), score(curr)) == expected


TRAIN = [f"t{i}" for i in range(1, 9)]


def test_plan_review_is_deterministic_and_scans_only_for_changed() -> None:
    seed, sample, scan = plan_review(TRAIN, 42, 2, 3, "changed")
    assert (seed, sample, scan) == plan_review(TRAIN, 42, 2, 3, "changed")
    assert len(sample) == 3 and len(scan) == 5
    assert sorted(sample + scan) == sorted(TRAIN)
    for policy in ("mixed", "unchanged"):
        assert plan_review(TRAIN, 42, 2, 3, policy) == (seed, sample, [])
    other_seed, other_sample, _ = plan_review(TRAIN, 42, 3, 3, "changed")
    assert other_seed != seed
    assert (
        plan_review(TRAIN, 42, 3, 8, "mixed")[1]
        == other_sample + plan_review(TRAIN, 42, 3, 8, "mixed")[1][3:]
    )


def review_plan(
    policy: str, target: int, sample: list[str], scan: list[str], same: bool = False
) -> ev.ReviewPlanned:
    return ev.ReviewPlanned(
        epoch=2,
        prev_hash=H1,
        curr_hash=H1 if same else H2,
        policy=policy,  # type: ignore[arg-type]
        target=target,
        seed=0,
        sample=sample,
        scan=scan,
    )


def scored_pair(item: str, prev: float, curr: float) -> list[ev.Event]:
    return [reviewed(H1, item, prev), reviewed(H2, item, curr)]


def test_review_mixed_keeps_every_category_of_the_sample() -> None:
    plan = review_plan("mixed", 4, ["a", "b", "c", "d"], [])
    events = [*scored_pair("a", 1, 1), *scored_pair("b", 0, 0), *scored_pair("c", 0, 1)]
    state = reduce(events)
    assert window(state, plan) == ["a", "b", "c", "d"]
    assert pending(state, plan) == ((H1, "d"), (H2, "d"))
    state = reduce([*events, *scored_pair("d", 1, 0)])
    assert pending(state, plan) == ()
    assert [(p.id, p.category) for p in pairs(state, plan)] == [
        ("a", "stable_success"),
        ("b", "persistent_fail"),
        ("c", "improved"),
        ("d", "regressed"),
    ]


def test_review_unchanged_keeps_only_stable_pairs() -> None:
    plan = review_plan("unchanged", 3, ["a", "b", "c"], [])
    state = reduce([*scored_pair("a", 1, 1), *scored_pair("b", 0, 1), *scored_pair("c", 0, 0)])
    assert [(p.id, p.category) for p in pairs(state, plan)] == [
        ("a", "stable_success"),
        ("c", "persistent_fail"),
    ]


def test_review_changed_tops_up_chunk_by_chunk_after_the_window_is_scored() -> None:
    plan = review_plan("changed", 2, ["a", "b"], ["c", "d", "e", "f"])
    state = TrainerState()
    assert window(state, plan) == ["a", "b"]
    assert pending(state, plan) == ((H1, "a"), (H1, "b"), (H2, "a"), (H2, "b"))

    events: list[ev.Event] = [*scored_pair("a", 1, 1), reviewed(H1, "b", 0)]
    # The window is not fully scored (b of the current skill is missing): no top-up yet.
    assert window(reduce(events), plan) == ["a", "b"]
    assert pending(reduce(events), plan) == ((H2, "b"),)

    events.append(reviewed(H2, "b", 1))  # b improved: one changed pair, one missing
    assert window(reduce(events), plan) == ["a", "b", "c"]
    assert pending(reduce(events), plan) == ((H1, "c"), (H2, "c"))

    events += scored_pair("c", 0, 0)  # persistent: still one missing, one more item
    assert window(reduce(events), plan) == ["a", "b", "c", "d"]

    events += scored_pair("d", 1, 0)  # regressed: enough, the scan stops
    state = reduce(events)
    assert window(state, plan) == ["a", "b", "c", "d"]
    assert pending(state, plan) == ()
    assert [(p.id, p.category) for p in pairs(state, plan)] == [
        ("b", "improved"),
        ("d", "regressed"),
    ]


def test_review_changed_chunk_is_as_large_as_the_pairs_missing() -> None:
    plan = review_plan("changed", 3, ["a", "b", "c"], ["d", "e", "f", "g", "h"])
    events = [*scored_pair("a", 1, 1), *scored_pair("b", 1, 1), *scored_pair("c", 0, 0)]
    assert window(reduce(events), plan) == ["a", "b", "c", "d", "e", "f"]
    events += [*scored_pair("d", 0, 1), *scored_pair("e", 1, 1), *scored_pair("f", 1, 1)]
    assert window(reduce(events), plan) == ["a", "b", "c", "d", "e", "f", "g", "h"]


def test_review_changed_scan_exhausted_gives_fewer_pairs() -> None:
    plan = review_plan("changed", 2, ["a", "b"], ["c"])
    events = [*scored_pair("a", 1, 1), *scored_pair("b", 0, 0), *scored_pair("c", 1, 0)]
    state = reduce(events)
    assert window(state, plan) == ["a", "b", "c"]
    assert pending(state, plan) == ()
    assert [(p.id, p.category) for p in pairs(state, plan)] == [("c", "regressed")]


def test_review_pending_rolls_one_skill_when_prev_is_curr() -> None:
    plan = review_plan("mixed", 2, ["a", "b"], [], same=True)
    assert pending(TrainerState(), plan) == ((H1, "a"), (H1, "b"))
    state = reduce([reviewed(H1, "a", 1), reviewed(H1, "b", 0)])
    assert pending(state, plan) == ()
    assert [(p.id, p.category) for p in pairs(state, plan)] == [
        ("a", "stable_success"),
        ("b", "persistent_fail"),
    ]


def test_review_changed_does_not_scan_when_prev_is_curr() -> None:
    # One skill scored once per item: no pair can be improved or regressed, so a top-up scan
    # would roll out the whole train split for nothing.
    plan = review_plan("changed", 2, ["a", "b"], ["c", "d", "e", "f"], same=True)
    state = reduce([reviewed(H1, "a", 1), reviewed(H1, "b", 0)])
    assert window(state, plan) == ["a", "b"]
    assert pending(state, plan) == ()
    assert pairs(state, plan) == []


# --- config ---------------------------------------------------------------------------------

ENV = {"name": "sim", "skill_init": "x.md"}


def optimizer(**keys: Any) -> OptimizerConfig:
    return validate_config({"env": ENV, "optimizer": keys}).optimizer


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("skill_update_mode", "rewrite", "rewrite_from_suggestions"),
        ("skill_update_mode", "suggestions", "rewrite_from_suggestions"),
        ("skill_update_mode", "full_rewrite", "full_rewrite_minibatch"),
        ("skill_update_mode", " Minibatch_Full_Rewrite ", "full_rewrite_minibatch"),
        ("skill_update_mode", "edits", "patch"),
        ("lr_control_mode", "auto", "autonomous"),
        ("lr_control_mode", "optimizer", "autonomous"),
        ("lr_control_mode", "off", "none"),
        ("lr_control_mode", "no_lr", "none"),
        ("lr_control_mode", "Scheduled", "fixed"),
        ("longitudinal_pair_policy", "delta", "changed"),
        ("longitudinal_pair_policy", "10_01", "changed"),
        ("longitudinal_pair_policy", "01_10", "changed"),
        ("longitudinal_pair_policy", "00_11", "unchanged"),
        ("longitudinal_pair_policy", "same", "unchanged"),
        ("longitudinal_pair_policy", "random", "mixed"),
    ],
)
def test_config_aliases(key: str, value: str, expected: str) -> None:
    assert getattr(optimizer(**{key: value}), key) == expected


@pytest.mark.parametrize(
    "key", ["skill_update_mode", "lr_control_mode", "longitudinal_pair_policy"]
)
def test_unknown_alias_names_the_key(key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^optimizer\.{key}: .*unknown {key} 'bogus'"):
        optimizer(**{key: "bogus"})


def test_recorded_config_reads_missing_new_keys_as_off() -> None:
    old = {"env": ENV, "optimizer": {"learning_rate": 3}}
    o = recorded_config(old).optimizer
    assert (o.use_step_buffer, o.use_slow_update, o.use_meta_skill) == (False, False, False)
    assert o.learning_rate == 3
    assert old == {"env": ENV, "optimizer": {"learning_rate": 3}}  # not mutated
    # No optimizer section at all: the same.
    assert not recorded_config({"env": ENV}).optimizer.use_slow_update
    # A config that names them keeps its values; a current config gets them on.
    kept = recorded_config({"env": ENV, "optimizer": {"use_meta_skill": True}}).optimizer
    assert (kept.use_meta_skill, kept.use_slow_update) == (True, False)
    o = validate_config({"env": ENV}).optimizer
    assert (o.use_step_buffer, o.use_slow_update, o.use_meta_skill) == (True, True, True)


def test_control_is_none_for_full_rewrite() -> None:
    assert optimizer(skill_update_mode="full_rewrite", lr_control_mode="auto").control == "none"
    assert optimizer(skill_update_mode="full_rewrite").control == "none"
    assert optimizer(skill_update_mode="rewrite", lr_control_mode="auto").control == "autonomous"
    assert optimizer().control == "fixed"


# --- offline modes --------------------------------------------------------------------------

HEADING = "## Rules"
SKILL = "# Skill\n\n## Rules\n- Answer briefly.\n"


def test_apply_suggestions_adds_and_replaces() -> None:
    out = om.apply_suggestions(
        SKILL,
        [
            {"instruction": f"{om.ADD}Cite sources."},
            {"instruction": f"{om.SWAP}Answer briefly.{om.ARROW}Answer in one line."},
            {"instruction": f"{om.ADD}Cite sources."},  # already there: not added twice
            {"instruction": "Be nicer."},  # neither form: ignored
        ],
        HEADING,
    )
    assert out == "# Skill\n\n## Rules\n- Cite sources.\n- Answer in one line.\n"


def test_apply_suggestions_creates_the_heading_when_absent() -> None:
    out = om.apply_suggestions("# Skill\n", [{"instruction": f"{om.ADD}Be exact."}], HEADING)
    assert out == "# Skill\n\n## Rules\n\n- Be exact.\n"


def reflection_obj() -> dict[str, Any]:
    return {
        "failure_summary": [
            {"failure_type": "format", "description": "the rule is stated but not followed"},
            {"failure_type": "units", "description": "no rule at all"},
        ],
        "patch": {
            "reasoning": "r",
            "edits": [
                {"op": "append", "content": "- Cite sources."},
                {"op": "replace", "target": "Answer briefly.", "content": "Answer in one line."},
            ],
        },
    }


def test_shape_reflection_patch_mode_keeps_edits() -> None:
    obj = om.shape_reflection(reflection_obj(), {"mode": "patch"}, HEADING)
    assert len(obj["patch"]["edits"]) == 2
    assert "revise_suggestions" not in obj["patch"] and "skill_candidates" not in obj["patch"]
    assert "appendix_notes" not in obj


def test_shape_reflection_rewrite_mode_turns_edits_into_suggestions() -> None:
    obj = om.shape_reflection(reflection_obj(), {"mode": "rewrite_from_suggestions"}, HEADING)
    assert obj["patch"]["edits"] == []
    assert [(s["type"], s["instruction"]) for s in obj["patch"]["revise_suggestions"]] == [
        ("add_rule", f"{om.ADD}Cite sources."),
        ("clarify", f"{om.SWAP}Answer briefly.{om.ARROW}Answer in one line."),
    ]


def test_shape_reflection_full_rewrite_mode_writes_one_whole_skill() -> None:
    hints = {"mode": "full_rewrite_minibatch", "skill": SKILL}
    obj = om.shape_reflection(reflection_obj(), hints, HEADING)
    assert obj["patch"]["edits"] == []
    (cand,) = obj["patch"]["skill_candidates"]
    assert cand["new_skill"] == "# Skill\n\n## Rules\n- Cite sources.\n- Answer in one line.\n"
    empty = reflection_obj()
    empty["patch"]["edits"] = []
    assert "skill_candidates" not in om.shape_reflection(empty, hints, HEADING)["patch"]


def test_shape_reflection_skill_aware_notes_only_for_lapses() -> None:
    obj = om.shape_reflection(reflection_obj(), {"mode": "patch", "skill_aware": True}, HEADING)
    assert obj["appendix_notes"] == [
        "Before answering a format task, re-read its rule in the skill and apply it exactly."
    ]


def test_consolidate_returns_strictly_fewer_notes_when_it_can() -> None:
    notes = [
        "Before answering a format task, re-read its rule in the skill and apply it exactly.",
        "Before answering an arithmetic task, re-read its rule in the skill and apply it exactly.",
        "Keep answers short.",
    ]
    out = om.consolidate({"notes": notes})["appendix_notes"]
    assert len(out) < len(notes)
    assert out == [
        "Before answering a task (format, arithmetic), re-read its rule in the skill and apply "
        "it exactly.",
        "Keep answers short.",
    ]
    # One lapse kind: nothing to merge, the notes come back as they are.
    assert om.consolidate({"notes": notes[1:]})["appendix_notes"] == notes[1:]


# --- transitions: the mechanisms' edges -------------------------------------------------------

H3 = "d3" * 32
SELECTION = ("s1", "s2", "s3")


def opened(optimizer: dict[str, Any], epochs: int = 1, steps_per_epoch: int = 2) -> list[ev.Event]:
    """A run at the start of step 1 (each step: items t1, t2)."""
    return [
        created(optimizer, epochs),
        loaded(steps_per_epoch, steps_per_epoch * epochs),
        baseline(),
        planned(1, 1, [["t1", "t2"]] * steps_per_epoch),
    ]


def proposal(
    mb: str,
    source: str = "failure",
    edits: list[Edit] | None = None,
    suggestions: list[Suggestion] | None = None,
    candidates: list[SkillCandidate] | None = None,
    notes: list[str] | None = None,
) -> ev.ReflectionProposed:
    return ev.ReflectionProposed(
        step=1,
        minibatch_id=mb,
        source_type=source,  # type: ignore[arg-type]
        item_ids=["t1"],
        ok=True,
        edits=edits or [],
        suggestions=suggestions or [],
        skill_candidates=candidates or [],
        appendix_notes=notes or [],
        call=CALL,
    )


def reflecting(optimizer: dict[str, Any], *proposals: ev.ReflectionProposed) -> list[ev.Event]:
    """Step 1 rolled out (t1 failed, t2 passed) and reflected on, one minibatch per proposal."""
    mbs = [
        ev.Minibatch(id=p.minibatch_id, source_type=p.source_type, item_ids=["t1"])
        for p in proposals
    ]
    plan = ev.ReflectionPlanned(
        step=1,
        epoch=1,
        skill_hash=H0,
        rollout_n=2,
        rollout_hard=0.5,
        rollout_soft=0.5,
        n_failures=1,
        n_successes=1,
        seed=3,
        minibatches=mbs,
    )
    rolled = [train(1, "t1", "format: x"), train(1, "t2", "")]
    return [*opened(optimizer), *rolled, plan, *proposals]


def built_candidate(
    candidate: str, mode: str = "patch", rewrite: ev.RewriteRecord | None = None
) -> ev.CandidateBuilt:
    return ev.CandidateBuilt(
        step=1,
        parent_hash=H0,
        candidate_hash=candidate,
        report=[],
        n_applied=0,
        n_skipped=0,
        length=10,
        mode=mode,  # type: ignore[arg-type]
        rewrite=rewrite,
    )


def selected_edits(
    edits: list[Edit], suggestions: list[Suggestion] | None = None
) -> ev.EditsSelected:
    return ev.EditsSelected(
        step=1,
        scheduler="cosine",
        schedule_t=1,
        schedule_total=2,
        budget=4,
        n_merged=len(edits),
        kept_indices=list(range(len(edits))),
        dropped_indices=[],
        edits=edits,
        suggestions=suggestions or [],
    )


ZERO_BUDGET = {"lr_scheduler": "linear", "learning_rate": 1, "min_learning_rate": 0}


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({}, SkipStep(1, "zero_budget")),
        ({"lr_control_mode": "autonomous"}, RolloutTrain(1, ((0, "t1"), (0, "t2")))),
        ({"lr_control_mode": "none"}, RolloutTrain(1, ((0, "t1"), (0, "t2")))),
        # A full rewrite has no budget, whatever lr_control_mode says.
        ({"skill_update_mode": "full_rewrite"}, RolloutTrain(1, ((0, "t1"), (0, "t2")))),
    ],
)
def test_zero_budget_skips_only_under_fixed_control(
    extra: dict[str, Any], expected: tr.Command
) -> None:
    state = reduce(opened({**ZERO_BUDGET, **extra}))
    assert next_budget(state) == 0  # linear, t=1 of 2: round(0.5) == 0 (banker's)
    assert next_command(state) == expected


def test_full_rewrite_goes_from_merge_to_update_without_select() -> None:
    cand = SkillCandidate(title="whole", skill_hash=H1)
    events = reflecting({"skill_update_mode": "full_rewrite"}, proposal("m1", candidates=[cand]))
    assert next_command(reduce(events)) == Merge(1)
    events.append(ev.PatchesMerged(step=1, nodes=[], root="n", edits=[], skill_candidates=[cand]))
    assert next_command(reduce(events)) == Update(1)
    events.append(built_candidate(H1, "full_rewrite_minibatch"))
    assert next_command(reduce(events)) == EvaluateCandidate(1, H1, SELECTION, False)


def test_full_rewrite_merge_without_candidate_skips() -> None:
    cand = SkillCandidate(title="whole", skill_hash=H1)
    events = reflecting({"skill_update_mode": "full_rewrite"}, proposal("m1", candidates=[cand]))
    events.append(ev.PatchesMerged(step=1, nodes=[], root="n", edits=[]))
    assert next_command(reduce(events)) == SkipStep(1, "no_patches")


def test_patch_mode_merge_goes_to_select() -> None:
    events = reflecting({}, proposal("m1", edits=[EDIT]))
    events.append(ev.PatchesMerged(step=1, nodes=[], root="n", edits=[EDIT]))
    assert next_command(reduce(events)) == Select(1)


SUGGESTION = Suggestion(title="t", instruction="State the units.")


def rewritten(candidate: str, ok: bool) -> list[ev.Event]:
    record = ev.RewriteRecord(ok=ok, error="" if ok else "new_skill is empty", call=CALL)
    return [
        *reflecting({"skill_update_mode": "rewrite"}, proposal("m1", suggestions=[SUGGESTION])),
        ev.PatchesMerged(step=1, nodes=[], root="n", edits=[], suggestions=[SUGGESTION]),
        selected_edits([], [SUGGESTION]),
        built_candidate(candidate, "rewrite_from_suggestions", record),
    ]


def test_rewrite_mode_selects_then_updates() -> None:
    events = rewritten(H1, ok=True)
    assert next_command(reduce(events[:-2])) == Select(1)
    assert next_command(reduce(events[:-1])) == Update(1)


def test_unusable_rewrite_skips_as_no_rewrite_else_nothing_applied() -> None:
    assert next_command(reduce(rewritten(H0, ok=False))) == SkipStep(1, "no_rewrite")
    assert next_command(reduce(rewritten(H0, ok=True))) == SkipStep(1, "nothing_applied")
    assert next_command(reduce(rewritten(H1, ok=True))) == EvaluateCandidate(
        1, H1, SELECTION, False
    )


AWARE = {"use_skill_aware_reflection": True}
NOTED = (
    proposal("m1", "failure", edits=[EDIT], notes=["fail note"]),
    proposal("m2", "success", edits=[EDIT], notes=["success note"]),
)


def decided(optimizer: dict[str, Any], *proposals: ev.ReflectionProposed) -> list[ev.Event]:
    """Step 1 up to a reject verdict."""
    return [
        *reflecting(optimizer, *proposals),
        ev.PatchesMerged(step=1, nodes=[], root="n", edits=[EDIT]),
        selected_edits([EDIT]),
        built_candidate(H1),
        ev.CandidateEvaluated(
            step=1,
            skill_hash=H1,
            n=3,
            hard=0.4,
            soft=0.4,
            metric="hard",
            gate_score=0.4,
            cache_hit=False,
        ),
        ev.GateDecided(
            step=1,
            epoch=1,
            candidate_hash=H1,
            action="reject",
            metric="hard",
            use_gate=True,
            candidate_score=0.4,
            current_score=0.5,
            best_score=0.5,
            rule="strict",
        ),
    ]


def test_appendix_flush_comes_after_the_verdict_when_notes_exist() -> None:
    events = decided(AWARE, *NOTED)
    assert next_command(reduce(events[:-1])) == Gate(1)  # no flush before the verdict
    state = reduce(events)
    assert next_command(state) == FlushAppendix(1)
    assert state.progress is not None
    assert appendix_notes_due(state, state.progress) == ["fail note", "success note"]


def test_appendix_failure_only_ignores_success_notes() -> None:
    only_failure = {**AWARE, "skill_aware_appendix_source": "failure_only"}
    state = reduce(decided(only_failure, *NOTED))
    assert state.progress is not None
    assert appendix_notes_due(state, state.progress) == ["fail note"]
    assert next_command(state) == FlushAppendix(1)
    success_only = (proposal("m1", "failure", edits=[EDIT]), NOTED[1])
    state = reduce(decided(only_failure, *success_only))
    assert state.progress is not None
    assert appendix_notes_due(state, state.progress) == []
    assert next_command(state) == CompleteStep(1)


def test_no_flush_without_skill_aware_reflection_or_without_notes() -> None:
    state = reduce(decided({}, *NOTED))
    assert state.progress is not None
    assert appendix_notes_due(state, state.progress) == []
    assert next_command(state) == CompleteStep(1)
    state = reduce(decided(AWARE, proposal("m1", edits=[EDIT])))
    assert next_command(state) == CompleteStep(1)


def test_appendix_flush_on_the_skip_path_too() -> None:
    events = reflecting(AWARE, proposal("m1", notes=["lapse"]))  # notes but no edits
    assert next_command(reduce(events)) == SkipStep(1, "no_patches")
    events.append(ev.StepSkipped(step=1, epoch=1, reason="no_patches", skill_hash=H0))
    assert next_command(reduce(events)) == FlushAppendix(1)


def flushed(skill: str, gated: bool) -> ev.AppendixFlushed:
    return ev.AppendixFlushed(
        step=1,
        epoch=1,
        parent_hash=H0,
        skill_hash=skill,
        notes=["fail note", "success note"],
        added=["fail note", "success note"] if skill != H0 else [],
        duplicates=0 if skill != H0 else 2,
        total=2,
        gated=gated,
    )


def update_gated(kind: str, step: int, epoch: int, skill: str) -> ev.UpdateGated:
    return ev.UpdateGated(
        kind=kind,  # type: ignore[arg-type]
        step=step,
        epoch=epoch,
        skill_hash=skill,
        n=3,
        hard=0.6,
        soft=0.6,
        gate_score=0.6,
        cache_hit=False,
        action="accept_new_best",
        current_score=0.5,
        best_score=0.5,
        rule="strict",
    )


def test_ungated_flush_completes_the_step() -> None:
    events = [*decided(AWARE, *NOTED), flushed(H2, gated=False)]
    assert next_command(reduce(events)) == CompleteStep(1)


def test_gated_appendix_is_gated_before_the_step_completes() -> None:
    gated = {**AWARE, "appendix_gated": True}
    events = [*decided(gated, *NOTED), flushed(H2, gated=True)]
    assert next_command(reduce(events)) == GateUpdate("appendix", 1, 1, H2, SELECTION, False)
    events.append(
        ev.RolloutScored(
            phase="selection",
            step=0,
            skill_hash=H2,
            item_id="s2",
            hard=1.0,
            soft=1.0,
            fail_reason="",
            task_type="rules",
            trajectory_hash="tr",
        )
    )
    assert next_command(reduce(events)) == GateUpdate("appendix", 1, 1, H2, ("s1", "s3"), False)
    events.append(update_gated("appendix", 1, 1, H2))
    assert next_command(reduce(events)) == CompleteStep(1)


def test_gated_appendix_of_a_measured_skill_is_a_cache_hit() -> None:
    gated = {**AWARE, "appendix_gated": True}
    # The flush wrote nothing new: the parent (the baseline, measured) is the skill.
    events = [*decided(gated, *NOTED), flushed(H0, gated=True)]
    assert next_command(reduce(events)) == CompleteStep(1)
    # The candidate H1 was measured by the step's evaluation: its gate reuses that score.
    events = [*decided(gated, *NOTED), flushed(H1, gated=True)]
    assert next_command(reduce(events)) == GateUpdate("appendix", 1, 1, H1, (), True)


def skipped_step(step: int, epoch: int, current: str) -> list[ev.Event]:
    return [
        ev.StepSkipped(step=step, epoch=epoch, reason="no_patches", skill_hash=current),
        ev.StepCompleted(
            step=step,
            epoch=epoch,
            action="skip_no_patches",
            current_hash=current,
            current_score=0.5,
            best_hash=H0,
            best_score=0.5,
            best_step=0,
        ),
    ]


def slow_done(epoch: int, action: str, parent: str, skill: str) -> ev.SlowUpdateDone:
    return ev.SlowUpdateDone(
        epoch=epoch,
        action=action,  # type: ignore[arg-type]
        parent_hash=parent,
        skill_hash=skill,
    )


def meta_done(epoch: int) -> ev.MetaSkillDone:
    return ev.MetaSkillDone(epoch=epoch, action="write", content_hash="m" * 64, call=CALL)


def epoch_done(epoch: int, current: str) -> ev.EpochCompleted:
    return ev.EpochCompleted(
        epoch=epoch, last_step=epoch, current_hash=current, best_hash=H0, best_score=0.5
    )


def walk(events: list[ev.Event], path: list[tuple[ev.Event | None, tr.Command]]) -> None:
    """Fold each event in turn and check the next command after it."""
    for event, expected in path:
        if event is not None:
            events.append(event)
        assert next_command(reduce(events)) == expected, f"after {type(event).__name__}"


def two_epochs(optimizer: dict[str, Any]) -> list[ev.Event]:
    """Two epochs of one step each, at the end of step 1."""
    return [*opened(optimizer, epochs=2, steps_per_epoch=1), *skipped_step(1, 1, H0)]


def test_epoch_end_order_with_a_gated_slow_update_and_the_meta_skill() -> None:
    events = two_epochs({"use_slow_update": True, "use_meta_skill": True})
    review = ev.ReviewPlanned(
        epoch=2,
        prev_hash=H1,
        curr_hash=H1,
        policy="mixed",
        target=1,
        seed=0,
        sample=["t1"],
        scan=[],
    )
    walk(
        events,
        [
            # Epoch 1: no review and no meta skill, only the empty slow-update block.
            (None, SlowUpdate(1)),
            (slow_done(1, "placeholder", H0, H1), CompleteEpoch(1)),
            (epoch_done(1, H1), PlanEpoch(2)),
            (planned(2, 2, [["t1", "t2"]]), RolloutTrain(2, ((0, "t1"), (0, "t2")))),
            (skipped_step(2, 2, H1)[0], CompleteStep(2)),
            (skipped_step(2, 2, H1)[1], PlanReview(2)),
            (review, ReviewRollout(2, ((H1, "t1"),))),
            (reviewed(H1, "t1", 1.0), SlowUpdate(2)),
            (slow_done(2, "gate", H1, H3), GateUpdate("slow_update", 2, 2, H3, SELECTION, False)),
            (update_gated("slow_update", 2, 2, H3), MetaSkill(2)),
            (meta_done(2), CompleteEpoch(2)),
        ],
    )
    events.append(epoch_done(2, H3))
    assert isinstance(next_command(reduce(events)), FinalSelection)


def test_epoch_end_force_accepted_slow_update_goes_straight_to_the_meta_skill() -> None:
    events = [
        *two_epochs({"use_slow_update": True, "use_meta_skill": True}),
        slow_done(1, "placeholder", H0, H1),
        epoch_done(1, H1),
        planned(2, 2, [["t1", "t2"]]),
        *skipped_step(2, 2, H1),
        ev.ReviewPlanned(
            epoch=2,
            prev_hash=H1,
            curr_hash=H1,
            policy="mixed",
            target=1,
            seed=0,
            sample=["t1"],
            scan=[],
        ),
        reviewed(H1, "t1", 0.0),
        slow_done(2, "force_accept", H1, H3),
    ]
    state = reduce(events)
    assert next_command(state) == MetaSkill(2)
    assert state.current_hash == H3  # written into the current skill
    assert H3 not in state.selection_cache  # and never cached as a measured score


def test_epoch_end_meta_skill_only() -> None:
    events = two_epochs({"use_slow_update": False, "use_meta_skill": True})
    review = ev.ReviewPlanned(
        epoch=2,
        prev_hash=H0,
        curr_hash=H2,
        policy="mixed",
        target=1,
        seed=0,
        sample=["t2"],
        scan=[],
    )
    walk(
        events,
        [
            (None, CompleteEpoch(1)),
            (epoch_done(1, H0), PlanEpoch(2)),
            (planned(2, 2, [["t1", "t2"]]), RolloutTrain(2, ((0, "t1"), (0, "t2")))),
            (skipped_step(2, 2, H0)[0], CompleteStep(2)),
            (skipped_step(2, 2, H0)[1], PlanReview(2)),
            (review, ReviewRollout(2, ((H0, "t2"), (H2, "t2")))),
            (reviewed(H0, "t2", 1.0), ReviewRollout(2, ((H2, "t2"),))),
            (reviewed(H2, "t2", 0.0), MetaSkill(2)),
            (meta_done(2), CompleteEpoch(2)),
        ],
    )


def test_epoch_end_without_mechanisms_completes_at_once() -> None:
    events = two_epochs({"use_slow_update": False, "use_meta_skill": False})
    walk(
        events,
        [
            (None, CompleteEpoch(1)),
            (epoch_done(1, H0), PlanEpoch(2)),
            (planned(2, 2, [["t1", "t2"]]), RolloutTrain(2, ((0, "t1"), (0, "t2")))),
            (skipped_step(2, 2, H0)[0], CompleteStep(2)),
            (skipped_step(2, 2, H0)[1], CompleteEpoch(2)),
        ],
    )


def rejected_step(optimizer: dict[str, Any], *middle: ev.Event) -> TrainerState:
    """Step 1 of a mode's run rejected (candidate 0.4 against 0.5) and completed."""
    verdict = decided(optimizer, proposal("m1", edits=[EDIT]))[-2:]  # evaluated, reject
    done = ev.StepCompleted(
        step=1,
        epoch=1,
        action="reject",
        current_hash=H0,
        current_score=0.5,
        best_hash=H0,
        best_score=0.5,
        best_step=0,
    )
    return reduce([*reflecting(optimizer), *middle, built_candidate(H1), *verdict, done])


def test_step_buffer_rejected_rows_of_the_rewrite_modes() -> None:
    merged = ev.PatchesMerged(step=1, nodes=[], root="n", edits=[], suggestions=[SUGGESTION])
    state = rejected_step(
        {"skill_update_mode": "rewrite"}, merged, selected_edits([], [SUGGESTION])
    )
    (entry,) = step_buffer(state, 1, 2)
    assert (entry.score_before, entry.score_after) == (0.5, 0.4)
    assert entry.rejected == (SUGGESTION.summary(160),)
    cand = SkillCandidate(title="whole skill", skill_hash=H1)
    merged = ev.PatchesMerged(step=1, nodes=[], root="n", edits=[], skill_candidates=[cand])
    state = rejected_step({"skill_update_mode": "full_rewrite"}, merged)
    (entry,) = step_buffer(state, 1, 2)
    assert entry.rejected == ("[rewrite] whole skill",)
