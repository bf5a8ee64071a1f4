"""machine/loop/reducer.py, machine/loop/transitions.py and machine/core/events.py on hand-built event sequences.

Each test folds a few events and asserts what `next_command` says next, walking the stage
graph one edge at a time.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from skillopt.machine.config.schema import ConfigError, validate_config
from skillopt.machine.core import events as ev
from skillopt.machine.core.canonical import canonical_json
from skillopt.machine.core.edits import Edit
from skillopt.machine.core.state import TrainerState, eval_key, train_key
from skillopt.machine.loop.reducer import apply, reduce
from skillopt.machine.loop.transitions import (
    CompleteEpoch,
    CompleteRun,
    EvaluateBaseline,
    EvaluateCandidate,
    FinalSelection,
    FinalTest,
    Gate,
    LoadDataset,
    Merge,
    PlanEpoch,
    PlanReflection,
    Reflect,
    RolloutTrain,
    Select,
    SkipStep,
    Update,
    next_command,
)

CONFIG: dict[str, Any] = {
    "env": {"name": "sim", "skill_init": "x.md"},
    "train": {"num_epochs": 1, "batch_size": 2},
}
H0 = "h0" * 32  # the initial skill
H1 = "h1" * 32  # a candidate
H2 = "h2" * 32  # another candidate
SELECTION = ["s1", "s2", "s3"]
CALL = ev.CallRecord(prompt_hash="p" * 64, response_hash="r" * 64, model="offline")
EDIT = Edit(op="append", content="Always cite sources.")


# --- event builders -------------------------------------------------------------------------


def run_created(config: dict[str, Any] | None = None) -> ev.RunCreated:
    return ev.RunCreated(
        run_name="demo",
        config=CONFIG if config is None else config,
        config_sha256="0" * 64,
        initial_skill_hash=H0,
        skillopt_version="0.1.0",
    )


def dataset(steps_per_epoch: int = 2, total_steps: int = 2) -> ev.DatasetLoaded:
    return ev.DatasetLoaded(
        env="sim",
        train=["t1", "t2", "t3", "t4"],
        selection=SELECTION,
        test=["x1", "x2"],
        task_types=["rules"],
        fingerprints={"train": "f1", "selection": "f2", "test": "f3"},
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
    )


def scored(
    phase: str, item: str, *, step: int = 0, skill: str = H0, hard: float = 1.0, batch: int = 0
) -> ev.RolloutScored:
    return ev.RolloutScored(
        phase=phase,  # type: ignore[arg-type]
        step=step,
        batch=batch,
        skill_hash=skill,
        item_id=item,
        hard=hard,
        soft=hard,
        fail_reason="" if hard else "wrong",
        task_type="rules",
        trajectory_hash="tr-" + item,
    )


def baseline(score: float = 0.5) -> ev.BaselineEvaluated:
    return ev.BaselineEvaluated(
        skill_hash=H0, n=3, hard=score, soft=score, metric="hard", gate_score=score
    )


def epoch_planned(
    epoch: int = 1, first_step: int = 1, steps: list[list[list[str]]] | None = None
) -> ev.EpochPlanned:
    steps = [[["t1", "t2"]], [["t3", "t4"]]] if steps is None else steps
    return ev.EpochPlanned(epoch=epoch, first_step=first_step, seed=7, steps=steps)


def reflection_planned(
    step: int, minibatch_ids: tuple[str, ...] = ("m1", "m2")
) -> ev.ReflectionPlanned:
    return ev.ReflectionPlanned(
        step=step,
        epoch=1,
        skill_hash=H0,
        rollout_n=2,
        rollout_hard=0.5,
        rollout_soft=0.5,
        n_failures=1,
        n_successes=1,
        seed=11,
        minibatches=[
            ev.Minibatch(id=m, source_type="failure", item_ids=["t1"]) for m in minibatch_ids
        ],
    )


def proposed(step: int, minibatch_id: str, edits: list[Edit]) -> ev.ReflectionProposed:
    return ev.ReflectionProposed(
        step=step,
        minibatch_id=minibatch_id,
        source_type="failure",
        item_ids=["t1"],
        ok=True,
        edits=edits,
        call=CALL,
    )


def merged(step: int, edits: list[Edit]) -> ev.PatchesMerged:
    node = ev.MergeNode(id="n1", level=1, group="final", inputs=["m1"], ok=True, edits=edits)
    return ev.PatchesMerged(step=step, nodes=[node], root="n1", edits=edits)


def selected(step: int, edits: list[Edit]) -> ev.EditsSelected:
    return ev.EditsSelected(
        step=step,
        scheduler="constant",
        schedule_t=step,
        schedule_total=2,
        budget=4,
        n_merged=len(edits),
        kept_indices=list(range(len(edits))),
        dropped_indices=[],
        edits=edits,
    )


def built(step: int, parent: str, candidate: str) -> ev.CandidateBuilt:
    row = ev.ApplyRow(index=1, op="append", target="", content_preview="x", status="applied_append")
    return ev.CandidateBuilt(
        step=step,
        parent_hash=parent,
        candidate_hash=candidate,
        report=[row],
        n_applied=1,
        n_skipped=0,
        length=100,
    )


def evaluated(
    step: int, skill: str, score: float, cache_hit: bool = False
) -> ev.CandidateEvaluated:
    return ev.CandidateEvaluated(
        step=step,
        skill_hash=skill,
        n=3,
        hard=score,
        soft=score,
        metric="hard",
        gate_score=score,
        cache_hit=cache_hit,
    )


def completed(step: int, action: str, current: str = H0, score: float = 0.5) -> ev.StepCompleted:
    return ev.StepCompleted(
        step=step,
        epoch=1,
        action=action,
        current_hash=current,
        current_score=score,
        best_hash=current,
        best_score=score,
        best_step=0 if current == H0 else step,
    )


def fold(*events: ev.Event) -> TrainerState:
    return reduce(events)


def step_one_rolled_out() -> list[ev.Event]:
    """A run up to the end of step 1's train rollouts."""
    return [
        run_created(),
        dataset(),
        baseline(),
        epoch_planned(),
        scored("train", "t1", step=1, hard=0.0),
        scored("train", "t2", step=1, hard=1.0),
    ]


def step_one_built(candidate: str) -> list[ev.Event]:
    """A run up to the candidate of step 1 (one minibatch, one edit)."""
    return [
        *step_one_rolled_out(),
        reflection_planned(1, ("m1",)),
        proposed(1, "m1", [EDIT]),
        merged(1, [EDIT]),
        selected(1, [EDIT]),
        built(1, H0, candidate),
    ]


# --- the stage graph ------------------------------------------------------------------------


def test_empty_state_loads_the_dataset() -> None:
    assert next_command(TrainerState()) == LoadDataset()
    assert next_command(fold(run_created())) == LoadDataset()


def test_run_created_validates_the_config() -> None:
    state = fold(run_created())
    # CONFIG predates the epoch-boundary mechanisms: recorded without their keys, they are off.
    legacy = {**CONFIG, "optimizer": {"use_step_buffer": False, "use_slow_update": False}}
    # ... and the stop after unusable steps is unset (their steps were no_patches, no stop)
    legacy["optimizer"] |= {"use_meta_skill": False, "max_unusable_steps": None}
    # ... and a role's max_tokens reaches only the optimizer's calls (config_version 1)
    assert state.config == validate_config({**legacy, "config_version": 1})
    assert validate_config(CONFIG).optimizer.use_slow_update  # a new config gets them on
    assert state.cfg.train.batch_size == 2
    assert state.cfg.train.num_epochs == 1
    assert state.config_data == CONFIG
    assert (state.initial_hash, state.current_hash, state.best_hash) == (H0, H0, H0)
    assert state.run_name == "demo"


def test_run_created_with_invalid_config_raises() -> None:
    with pytest.raises(ConfigError, match=r"train\.bogus: unknown key"):
        fold(run_created({**CONFIG, "train": {"bogus": 1}}))


def test_baseline_pending_shrinks_as_selection_items_are_scored() -> None:
    events: list[ev.Event] = [run_created(), dataset()]
    assert next_command(reduce(events)) == EvaluateBaseline(H0, ("s1", "s2", "s3"))

    events.append(scored("selection", "s2"))
    assert next_command(reduce(events)) == EvaluateBaseline(H0, ("s1", "s3"))

    # Scores of another skill, of another phase or of the test split do not count.
    events += [
        scored("selection", "s1", skill=H1),
        scored("test", "s1"),
        scored("train", "s1", step=1),
    ]
    assert next_command(reduce(events)) == EvaluateBaseline(H0, ("s1", "s3"))

    events += [scored("selection", "s1"), scored("selection", "s3")]
    assert next_command(reduce(events)) == EvaluateBaseline(H0, ())

    events.append(baseline(0.5))
    state = reduce(events)
    assert next_command(state) == PlanEpoch(1)
    assert (state.current_score, state.best_score) == (0.5, 0.5)
    assert H0 in state.selection_cache


def test_epoch_plan_opens_step_one_and_rollout_pending_shrinks() -> None:
    events: list[ev.Event] = [run_created(), dataset(), baseline(), epoch_planned()]
    state = reduce(events)
    assert state.progress is not None
    assert (state.progress.step, state.progress.epoch) == (1, 1)
    assert state.progress.batches == (("t1", "t2"),)
    assert next_command(state) == RolloutTrain(1, ((0, "t1"), (0, "t2")))

    events.append(scored("train", "t1", step=1))
    assert next_command(reduce(events)) == RolloutTrain(1, ((0, "t2"),))

    # A train score of another step does not count for this one.
    events.append(scored("train", "t2", step=2))
    assert next_command(reduce(events)) == RolloutTrain(1, ((0, "t2"),))

    events.append(scored("train", "t2", step=1))
    assert next_command(reduce(events)) == PlanReflection(1)


def test_accumulation_batches_are_keyed_by_batch() -> None:
    events: list[ev.Event] = [
        run_created(),
        dataset(steps_per_epoch=1, total_steps=1),
        baseline(),
        epoch_planned(steps=[[["t1", "t2"], ["t2", "t3"]]]),
        scored("train", "t2", step=1, batch=0),
    ]
    # The same item in batch 1 is a separate unit of work.
    assert next_command(reduce(events)) == RolloutTrain(1, ((0, "t1"), (1, "t2"), (1, "t3")))


def test_reflect_pending_then_skip_when_no_proposal_has_edits() -> None:
    events = [*step_one_rolled_out(), reflection_planned(1, ("m1", "m2"))]
    assert next_command(reduce(events)) == Reflect(1, ("m1", "m2"))

    events.append(proposed(1, "m2", []))
    assert next_command(reduce(events)) == Reflect(1, ("m1",))

    events.append(proposed(1, "m1", []))
    command = next_command(reduce(events))
    assert command == SkipStep(1, "no_patches")
    assert command.stage == "skip"


def test_one_proposal_with_edits_goes_to_merge() -> None:
    events = [
        *step_one_rolled_out(),
        reflection_planned(1, ("m1", "m2")),
        proposed(1, "m1", []),
        proposed(1, "m2", [EDIT]),
    ]
    assert next_command(reduce(events)) == Merge(1)


def test_merge_with_no_edits_skips_with_no_patches() -> None:
    events = [
        *step_one_rolled_out(),
        reflection_planned(1, ("m1",)),
        proposed(1, "m1", [EDIT]),
        merged(1, []),
    ]
    assert next_command(reduce(events)) == SkipStep(1, "no_patches")


def test_merge_select_update_in_order() -> None:
    events = [*step_one_rolled_out(), reflection_planned(1, ("m1",)), proposed(1, "m1", [EDIT])]
    assert next_command(reduce(events)) == Merge(1)
    events.append(merged(1, [EDIT]))
    assert next_command(reduce(events)) == Select(1)
    events.append(selected(1, [EDIT]))
    state = reduce(events)
    assert next_command(state) == Update(1)
    assert state.budget_t == 1


def test_candidate_identical_to_parent_skips_with_nothing_applied() -> None:
    state = reduce(step_one_built(candidate=H0))
    assert next_command(state) == SkipStep(1, "nothing_applied")


def test_skipped_step_completes_and_opens_the_next_step() -> None:
    events = [
        *step_one_built(candidate=H0),
        ev.StepSkipped(step=1, epoch=1, reason="nothing_applied", skill_hash=H0),
        completed(1, "skip_nothing_applied"),
    ]
    state = reduce(events)
    assert state.steps_completed == 1
    assert state.progress is not None and state.progress.step == 2
    assert next_command(state) == RolloutTrain(2, ((0, "t3"), (0, "t4")))
    (record,) = state.records
    assert (record.step, record.action, record.rule) == (
        1,
        "skip_nothing_applied",
        "nothing_applied",
    )
    assert (record.rollout_n, record.rollout_hard) == (2, 0.5)
    assert record.edits == (
        {
            "op": "append",
            "target": "",
            "content": EDIT.content,
            "source_type": "failure",
            "status": "applied_append",
        },
    )
    assert state.totals() == {"steps": 1, "accepts": 0, "rejects": 0, "skips": 1}


def test_new_candidate_is_evaluated_on_the_selection_split() -> None:
    events = step_one_built(candidate=H1)
    assert next_command(reduce(events)) == EvaluateCandidate(1, H1, ("s1", "s2", "s3"), False)

    events.append(scored("selection", "s3", skill=H1))
    assert next_command(reduce(events)) == EvaluateCandidate(1, H1, ("s1", "s2"), False)

    events.append(evaluated(1, H1, 0.4))
    state = reduce(events)
    assert next_command(state) == Gate(1)
    assert state.selection_cache[H1].gate_score == 0.4


def test_candidate_already_evaluated_is_a_cache_hit() -> None:
    # Step 1 evaluates H1 and rejects it; step 2 proposes H1 again.
    events: list[ev.Event] = [
        *step_one_built(candidate=H1),
        evaluated(1, H1, 0.4),
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
            rule="candidate 0.4000 <= current 0.5000 (strict >; ties reject)",
        ),
        completed(1, "reject"),
        scored("train", "t3", step=2),
        scored("train", "t4", step=2),
        reflection_planned(2, ("m1",)),
        proposed(2, "m1", [EDIT]),
        merged(2, [EDIT]),
        selected(2, [EDIT]),
        built(2, H0, H1),
    ]
    state = reduce(events)
    assert state.records[0].action == "reject"
    assert state.current_hash == H0
    assert next_command(state) == EvaluateCandidate(2, H1, (), cache_hit=True)


def test_candidate_equal_to_the_baseline_skill_is_a_cache_hit() -> None:
    # Step 1 accepts H1; step 2's candidate goes back to H0, scored by the baseline.
    events: list[ev.Event] = [
        *step_one_built(candidate=H1),
        evaluated(1, H1, 0.9),
        completed(1, "accept_new_best", current=H1, score=0.9),
        scored("train", "t3", step=2),
        scored("train", "t4", step=2),
        reflection_planned(2, ("m1",)),
        proposed(2, "m1", [EDIT]),
        merged(2, [EDIT]),
        selected(2, [EDIT]),
        built(2, H1, H0),
    ]
    state = reduce(events)
    assert (state.current_hash, state.current_step, state.best_step) == (H1, 1, 1)
    assert next_command(state) == EvaluateCandidate(2, H0, (), cache_hit=True)


def test_end_of_training_epoch_final_evaluation_and_completion() -> None:
    events: list[ev.Event] = [
        run_created(),
        dataset(steps_per_epoch=1, total_steps=1),
        baseline(),
        epoch_planned(steps=[[["t1", "t2"]]]),
        scored("train", "t1", step=1),
        scored("train", "t2", step=1),
        reflection_planned(1, ("m1",)),
        proposed(1, "m1", []),
        ev.StepSkipped(step=1, epoch=1, reason="no_patches", skill_hash=H0),
        completed(1, "skip_no_patches"),
    ]
    state = reduce(events)
    assert state.progress is None  # step 2 does not exist
    assert next_command(state) == CompleteEpoch(1)

    events.append(
        ev.EpochCompleted(epoch=1, last_step=1, current_hash=H0, best_hash=H0, best_score=0.5)
    )
    # final == best: the selection score is reused, nothing to roll out.
    assert next_command(reduce(events)) == FinalSelection(H0, (), True)

    events.append(
        ev.FinalEvaluated(
            split="selection",
            role="final",
            skill_hash=H0,
            n=3,
            hard=0.5,
            soft=0.5,
            gate_score=0.5,
            reused=True,
        )
    )
    assert next_command(reduce(events)) == FinalTest("initial", H0, ("x1", "x2"), reuse=False)
    events.append(scored("test", "x2"))
    assert next_command(reduce(events)) == FinalTest("initial", H0, ("x1",), reuse=False)
    events.append(scored("test", "x1"))
    assert next_command(reduce(events)) == FinalTest("initial", H0, (), reuse=False)

    for role in ("initial", "best", "final"):
        if role != "initial":  # every role is the same skill: later ones reuse its scores
            assert next_command(reduce(events)) == FinalTest(role, H0, (), reuse=True)
        events.append(
            ev.FinalEvaluated(
                split="test",
                role=role,
                skill_hash=H0,
                n=2,
                hard=1.0,
                soft=1.0,  # type: ignore[arg-type]
                gate_score=1.0,
            )
        )
    assert next_command(reduce(events)) == CompleteRun()

    events.append(
        ev.RunCompleted(
            best_hash=H0,
            best_score=0.5,
            best_step=0,
            final_hash=H0,
            steps=1,
            accepts=0,
            rejects=0,
            skips=1,
        )
    )
    assert next_command(reduce(events)) is None


def test_epoch_boundary_between_epochs() -> None:
    config = {**CONFIG, "train": {"num_epochs": 2, "batch_size": 2}}
    events: list[ev.Event] = [
        run_created(config),
        dataset(steps_per_epoch=1, total_steps=2),
        baseline(),
        epoch_planned(steps=[[["t1", "t2"]]]),
        scored("train", "t1", step=1),
        scored("train", "t2", step=1),
        reflection_planned(1, ("m1",)),
        proposed(1, "m1", []),
        ev.StepSkipped(step=1, epoch=1, reason="no_patches", skill_hash=H0),
        completed(1, "skip_no_patches"),
    ]
    assert next_command(reduce(events)) == CompleteEpoch(1)
    events.append(
        ev.EpochCompleted(epoch=1, last_step=1, current_hash=H0, best_hash=H0, best_score=0.5)
    )
    assert next_command(reduce(events)) == PlanEpoch(2)
    events.append(epoch_planned(epoch=2, first_step=2, steps=[[["t3", "t4"]]]))
    state = reduce(events)
    assert state.epoch == 2
    assert next_command(state) == RolloutTrain(2, ((0, "t3"), (0, "t4")))


# --- the reducer ----------------------------------------------------------------------------


class _Unregistered(ev.Event):
    TYPE = "test.unregistered"
    note: str = ""


def test_apply_on_an_event_type_without_a_rule_raises() -> None:
    with pytest.raises(TypeError, match="test.unregistered"):
        apply(TrainerState(), _Unregistered(note="x"))


def test_state_is_frozen() -> None:
    state = fold(run_created())
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.seq = 99  # type: ignore[misc]
    assert dataclasses.is_dataclass(state)


def test_apply_returns_a_new_state_and_leaves_the_old_one_alone() -> None:
    before = reduce([run_created(), dataset()])
    after = apply(before, scored("selection", "s1"))
    assert after is not before
    assert (before.seq, after.seq) == (2, 3)
    assert before.rollouts == {}
    assert set(after.scored(eval_key("selection", H0))) == {"s1"}
    assert after.scored(train_key(1)) == {}


def test_reduce_twice_gives_equal_states() -> None:
    events = [*step_one_built(candidate=H1), evaluated(1, H1, 0.4)]
    first, second = reduce(events), reduce(events)
    assert first == second
    assert first is not second
    assert first.seq == len(events)


def test_reduce_can_continue_from_a_state() -> None:
    events = step_one_built(candidate=H1)
    assert reduce(events[3:], reduce(events[:3])) == reduce(events)


def test_rollout_tokens_are_counted_per_phase() -> None:
    event = scored("selection", "s1").model_copy(
        update={"tokens": ev.Tokens(input=10, output=3, cached=4)}
    )
    state = reduce([run_created(), dataset(), event, event])
    assert state.tokens["rollout:selection"] == (2, 20, 6, 8)


# --- events ---------------------------------------------------------------------------------


def sample_events() -> list[ev.Event]:
    """One instance of every registered event type, with nested models filled in."""
    ranking = ev.RankingRecord(
        ok=True, reasoning="r", raw_indices=[1, "x"], invalid_indices=["x"], call=CALL
    )
    return [
        run_created(),
        dataset(),
        scored("train", "t1", step=1, hard=0.0).model_copy(
            update={
                "feedback": {"expected": "a", "n": [1, 2]},
                "tokens": ev.Tokens(input=5, output=2),
            }
        ),
        baseline(),
        epoch_planned(),
        reflection_planned(1),
        proposed(1, "m1", [EDIT, Edit(op="replace", target="a", content="b", support_count=3)]),
        merged(1, [EDIT]),
        selected(1, [EDIT]).model_copy(update={"ranking": ranking}),
        built(1, H0, H1),
        ev.StepSkipped(step=1, epoch=1, reason="no_patches", skill_hash=H0),
        evaluated(1, H1, 0.75, cache_hit=True),
        ev.GateDecided(
            step=1,
            epoch=1,
            candidate_hash=H1,
            action="accept_new_best",
            metric="hard",
            use_gate=True,
            candidate_score=0.75,
            current_score=0.5,
            best_score=0.5,
            rule="r",
        ),
        completed(1, "accept_new_best", current=H1, score=0.75),
        ev.EpochCompleted(epoch=1, last_step=2, current_hash=H1, best_hash=H1, best_score=0.75),
        ev.FinalEvaluated(
            split="test",
            role="best",
            skill_hash=H1,
            n=2,
            hard=0.5,
            soft=0.6,
            gate_score=0.5,
            buckets={"overall": ev.ScoreBucket(total=2, hard=0.5, soft=0.6)},
            best_score_before=0.4,
        ),
        ev.RunCompleted(
            best_hash=H1,
            best_score=0.75,
            best_step=1,
            final_hash=H1,
            steps=2,
            accepts=1,
            rejects=0,
            skips=1,
        ),
        ev.StageFailed(stage="rollout", step=2, error_type="TimeoutError", message="slow"),
        ev.SettingsChanged(changes={"train.num_epochs": [1, 2]}, config=CONFIG),
        ev.BudgetSet(max_usd=2.5, max_tokens=None),
        ev.BudgetExhausted(
            stage="reflect", spent_usd=2.6, spent_tokens=900, max_usd=2.5, max_tokens=None
        ),
        *mechanism_events(),
        *bench_events(),
    ]


def mechanism_events() -> list[ev.Event]:
    """The epoch-boundary and appendix events (issue 3)."""
    pair = ev.Pair(id="t1", category="improved")
    gated = {"n": 2, "hard": 0.5, "soft": 0.5, "gate_score": 0.5, "cache_hit": False}
    verdict = {"action": "reject", "current_score": 0.5, "best_score": 0.5, "rule": "r"}
    return [
        ev.AppendixFlushed(
            step=1,
            epoch=1,
            parent_hash=H0,
            skill_hash=H1,
            notes=["n1", "N1."],
            added=["n1"],
            duplicates=1,
            total=3,
            consolidation=ev.ConsolidationRecord(
                ok=True, kept=True, before=3, notes=["n"], call=CALL
            ),
            gated=True,
        ),
        ev.ReviewPlanned(
            epoch=2,
            prev_hash=H0,
            curr_hash=H1,
            policy="changed",
            target=2,
            seed=7,
            sample=["t1", "t2"],
            scan=["t3"],
        ),
        ev.SlowUpdateDone(
            epoch=2,
            action="force_accept",
            parent_hash=H1,
            skill_hash=H0,
            pairs=[pair],
            content_hash=H0,
            reasoning="r",
            call=CALL,
        ),
        ev.MetaSkillDone(epoch=2, action="write", pairs=[pair], content_hash=H0, call=CALL),
        ev.UpdateGated(kind="slow_update", step=2, epoch=2, skill_hash=H0, **gated, **verdict),
    ]


def bench_events() -> list[ev.Event]:
    """A bench run's events (skillopt bench): never folded by the reducer."""
    arm = ev.BenchArm(
        label="closed_loop",
        config=CONFIG,
        config_sha256="c" * 64,
        backend="offline",
        model="offline-target",
        skill_hash=H0,
        retry_cap=3,
        fingerprint="f" * 64,
    )
    attempt = ev.BenchAttempt(
        attempt=1,
        kind="generate",
        outcome="partial",
        category="wrong_output",
        detail="printed '1', expected '2'",
        exit_code=0,
        tokens=ev.Tokens(input=120, output=20),
        reply_hash="r" * 64,
        program_hash="p" * 64,
        stdout_hash="o" * 64,
        stderr_hash="e" * 64,
        call_id="c123",
    )
    no_program = attempt.model_copy(
        update={"attempt": 2, "kind": "repair", "outcome": "failed", "program_hash": None}
    )
    return [
        ev.BenchStarted(
            run_name="bench-1",
            env="closed_loop",
            arms=[arm],
            task_ids=["t1"],
            source={"split_mode": "split_dir", "splits": ["test"]},
            skillopt_version="0.1.0",
        ),
        ev.BenchTask(
            arm=0,
            task_id="t1",
            task_type="arithmetic",
            expected="2",
            outcome="failed",
            hard=0.0,
            soft=0.1,
            fail_reason="no_program: arithmetic: none (after 2 attempts)",
            attempts=[attempt, no_program],
            trajectory_hash="t" * 64,
        ),
        ev.BenchCompleted(
            totals=[
                ev.BenchTotals(
                    arm=0,
                    runs=1,
                    succeeded=0,
                    first_attempt=0,
                    attempts=2,
                    generation_tokens=40,
                    input_tokens=240,
                )
            ]
        ),
    ]


def test_samples_cover_every_registered_type() -> None:
    assert {type(e) for e in sample_events()} == set(ev.REGISTRY.values())
    assert all(key == (cls.TYPE, cls.VERSION) for key, cls in ev.REGISTRY.items())


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.TYPE)
def test_parse_event_round_trips_the_payload(event: ev.Event) -> None:
    payload = event.payload()
    text = canonical_json(payload)  # the payload is plain JSON
    parsed = ev.parse_event(event.TYPE, event.VERSION, payload)
    assert type(parsed) is type(event)
    assert parsed == event
    assert canonical_json(parsed.payload()) == text


def test_parse_event_unknown_type_or_version() -> None:
    with pytest.raises(ev.UnknownEventType, match="unknown event type nope v1"):
        ev.parse_event("nope", 1, {})
    with pytest.raises(ev.UnknownEventType, match="run.created v2"):
        ev.parse_event("run.created", 2, run_created().payload())


def test_parse_event_rejects_unknown_fields() -> None:
    payload = {**baseline().payload(), "surprise": 1}
    with pytest.raises(ValueError, match="surprise"):
        ev.parse_event("baseline.evaluated", 1, payload)


def test_registering_a_type_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        ev.register(ev.RunCreated)


def test_events_are_frozen() -> None:
    event = baseline()
    with pytest.raises(ValueError, match="frozen"):
        event.n = 4  # type: ignore[misc]
