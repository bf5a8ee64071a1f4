"""The trainer state: an immutable value folded from the events of one run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skillopt.machine.config.schema import SkilloptConfig
from skillopt.machine.core.events import (
    AppendixFlushed,
    BaselineEvaluated,
    BudgetExhausted,
    CandidateBuilt,
    CandidateEvaluated,
    DatasetLoaded,
    EditsSelected,
    EpochPlanned,
    FinalEvaluated,
    GateDecided,
    MetaSkillDone,
    PatchesMerged,
    ReflectionPlanned,
    ReflectionProposed,
    ReviewPlanned,
    RunCompleted,
    SlowUpdateDone,
    StageFailed,
    StepSkipped,
    UpdateGated,
)

# (phase, step, skill_hash): train rollouts are keyed by step, selection/test ones by skill.
RolloutKey = tuple[str, int, str]


def train_key(step: int) -> RolloutKey:
    return ("train", step, "")


def eval_key(phase: str, skill_hash: str) -> RolloutKey:
    return (phase, 0, skill_hash)


def unit_key(batch: int, item_id: str) -> str:
    """Train items are keyed by accumulation batch too: a refilled batch may repeat an item."""
    return f"{batch}/{item_id}"


@dataclass(frozen=True)
class ItemScore:
    item_id: str
    hard: float
    soft: float
    fail_reason: str
    task_type: str
    trajectory_hash: str
    feedback: Mapping[str, Any]
    seq: int
    tokens: tuple[int, int] = (0, 0)  # (input, output)


@dataclass(frozen=True)
class SelectionScore:
    hard: float
    soft: float
    n: int
    gate_score: float


@dataclass(frozen=True)
class StepProgress:
    """Everything recorded so far for the step in progress."""

    step: int
    epoch: int
    batches: tuple[tuple[str, ...], ...]
    parent_hash: str
    reflection: ReflectionPlanned | None = None
    proposals: Mapping[str, ReflectionProposed] = field(default_factory=dict)
    merged: PatchesMerged | None = None
    selected: EditsSelected | None = None
    candidate: CandidateBuilt | None = None
    evaluated: CandidateEvaluated | None = None
    decided: GateDecided | None = None
    skipped: StepSkipped | None = None
    appendix: AppendixFlushed | None = None
    appendix_gate: UpdateGated | None = None


@dataclass(frozen=True)
class StepRecord:
    """One finished step, as reports show it."""

    step: int
    epoch: int
    action: str
    rollout_hard: float | None
    rollout_soft: float | None
    rollout_n: int
    candidate_hash: str | None
    selection_hard: float | None
    selection_soft: float | None
    candidate_gate_score: float | None
    cache_hit: bool | None
    current_score: float
    best_score: float
    n_edits_merged: int
    n_edits_selected: int
    edit_budget: int | None
    edits_applied: int
    edits_skipped: int
    rule: str
    edits: tuple[dict[str, str], ...] = ()
    current_hash: str = ""
    best_hash: str = ""
    stopped_after: int | None = None  # early reject: selection items scored (sel. = over them)


@dataclass(frozen=True)
class TrainerState:
    run_name: str = ""
    seq: int = 0
    config: SkilloptConfig | None = None
    config_data: Mapping[str, Any] = field(default_factory=dict)
    initial_hash: str = ""
    dataset: DatasetLoaded | None = None
    baseline: BaselineEvaluated | None = None
    current_hash: str = ""
    current_score: float = 0.0
    current_step: int = 0
    current_origin: str = "initial"
    best_hash: str = ""
    best_score: float = 0.0
    best_step: int = 0
    best_origin: str = "initial"
    plans: Mapping[int, EpochPlanned] = field(default_factory=dict)
    epochs_completed: int = 0
    steps_completed: int = 0
    progress: StepProgress | None = None
    records: tuple[StepRecord, ...] = ()
    details: Mapping[int, StepProgress] = field(default_factory=dict)  # finished steps, in full
    budget_t: int = 0
    selection_cache: Mapping[str, SelectionScore] = field(default_factory=dict)
    rollouts: Mapping[RolloutKey, Mapping[str, ItemScore]] = field(default_factory=dict)
    final_selection: FinalEvaluated | None = None
    final_tests: Mapping[str, FinalEvaluated] = field(default_factory=dict)
    completed: RunCompleted | None = None
    last_failure: StageFailed | None = None  # cleared by any later progress
    fork_seq: int | None = None  # a fork: the last seq copied from its origin
    fork_origin: Mapping[str, Any] | None = None  # a fork: its origin (run_name, run_id, seq)
    last_stop: BudgetExhausted | None = None  # the latest budget stop, until anything else
    budget_set: bool = False  # budget.set overrides the config's limits
    budget_usd: float | None = None
    budget_tokens: int | None = None
    epoch_end_hashes: Mapping[int, str] = field(default_factory=dict)  # current at epoch end
    reviews: Mapping[int, ReviewPlanned] = field(default_factory=dict)
    slow_updates: Mapping[int, SlowUpdateDone] = field(default_factory=dict)
    slow_gates: Mapping[int, UpdateGated] = field(default_factory=dict)
    meta_skills: Mapping[int, MetaSkillDone] = field(default_factory=dict)
    # stage -> (calls, input tokens, output tokens, cached input tokens)
    tokens: Mapping[str, tuple[int, int, int, int]] = field(default_factory=dict)
    # stage -> input tokens written to the provider's prompt cache (only stages that wrote)
    cache_written: Mapping[str, int] = field(default_factory=dict)
    unusable: Mapping[str, int] = field(default_factory=dict)  # stage -> replies unusable twice
    reused: Mapping[str, int] = field(default_factory=dict)  # phase -> rollouts reused, not paid
    unusable_streak: int = 0  # steps in a row skipped as reflection_unusable
    judge_unusable_streak: int = 0  # steps in a row whose judge replies were all unusable
    warnings: tuple[str, ...] = ()  # what init warned about (run.created)

    @property
    def cfg(self) -> SkilloptConfig:
        if self.config is None:
            raise ValueError("run has no run.created event")
        return self.config

    @property
    def epoch(self) -> int:
        if self.progress is not None:
            return self.progress.epoch
        return max(self.plans, default=0)

    @property
    def total_steps(self) -> int:
        return self.dataset.total_steps if self.dataset else 0

    def epoch_of(self, step: int) -> int:
        assert self.dataset is not None
        return (step - 1) // self.dataset.steps_per_epoch + 1

    def meta_skill_hash(self, epoch: int) -> str:
        """The optimizer meta skill active during `epoch`: the one written at the end of the
        epoch before it ("" when none)."""
        done = self.meta_skills.get(epoch - 1)
        return done.content_hash if done is not None and done.action == "write" else ""

    def scored(self, key: RolloutKey) -> Mapping[str, ItemScore]:
        return self.rollouts.get(key, {})

    def step_items(self, step: int) -> dict[str, ItemScore]:
        """The step's scored train items by id, in record order (a refilled duplicate counts once)."""
        out: dict[str, ItemScore] = {}
        for score in sorted(self.scored(train_key(step)).values(), key=lambda s: s.seq):
            out.setdefault(score.item_id, score)
        return out

    def totals(self) -> dict[str, int]:
        actions = [r.action for r in self.records]
        return {
            "steps": len(actions),
            "accepts": sum(
                1 for a in actions if a in ("accept", "accept_new_best", "force_accept")
            ),
            "rejects": sum(1 for a in actions if a == "reject"),
            "skips": sum(1 for a in actions if a.startswith("skip")),
        }
