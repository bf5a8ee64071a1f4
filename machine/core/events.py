"""Event types: the contract between handlers, the ledger and the reducer.

Each type is a small immutable model with a type string and a version. A recorded field never
changes meaning: a new meaning is a new version, and the reducer learns both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from skillopt.machine.core.edits import Edit, SkillCandidate, Suggestion

Phase = Literal["train", "selection", "test", "review"]  # review: the epoch-end comparison


class Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


REGISTRY: dict[tuple[str, int], type[Event]] = {}


def register(cls: type[Event]) -> type[Event]:
    key = (cls.TYPE, cls.VERSION)
    if key in REGISTRY:
        raise ValueError(f"event type registered twice: {key}")
    REGISTRY[key] = cls
    return cls


class UnknownEventType(ValueError):
    pass


Upcast = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTS: dict[tuple[str, int], Upcast] = {}


def upcast(type_: str, version: int) -> Callable[[Upcast], Upcast]:
    """Register how a recorded `type_` vN payload reads as vN+1. A ledger keeps what it
    recorded; parse_event lifts an old payload through each step up to the registered model,
    so the reducer, views and verify only ever see the newest version of a type."""

    def register(fn: Upcast) -> Upcast:
        if (type_, version) in UPCASTS:
            raise ValueError(f"upcast registered twice: {type_} v{version}")
        UPCASTS[(type_, version)] = fn
        return fn

    return register


def parse_event(type_: str, version: int, payload: dict[str, Any]) -> Event:
    while (type_, version) not in REGISTRY and (type_, version) in UPCASTS:
        payload = UPCASTS[(type_, version)](dict(payload))
        version += 1
    cls = REGISTRY.get((type_, version))
    if cls is None:
        raise UnknownEventType(f"unknown event type {type_} v{version}")
    return cls.model_validate(payload)


class Tokens(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    input: int = 0  # all input tokens, cached ones included
    output: int = 0
    cached: int = 0  # input tokens read from the provider's prompt cache
    # input tokens written to the provider's prompt cache (billed at its write price); left
    # out of the payload while 0, so calls recorded before it keep their exact payloads
    written: int = 0

    @model_serializer(mode="wrap")
    def _without_zero_writes(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if not out.get("written"):
            out.pop("written", None)
        return out


class CallRecord(BaseModel):
    """One optimizer call: its prompt and response live in blobs, by hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    prompt_hash: str
    response_hash: str
    model: str
    tokens: Tokens = Tokens()
    call_id: str = ""  # the row of the call journal (skillopt calls show ID)


class ScoreBucket(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    total: int
    hard: float
    soft: float


class ForkOrigin(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    run_name: str
    run_id: str
    seq: int


@register
class RunCreated(Event):
    TYPE = "run.created"
    run_name: str
    config: dict[str, Any]
    config_sha256: (
        str  # of the config file as read; its path is left out so ledgers do not depend on it
    )
    initial_skill_hash: str
    skillopt_version: str
    forked_from: ForkOrigin | None = None  # a fork: events 2..seq are copied from that run
    # Config keys read with a caveat or ignored (a reference-format file; machine/config_compat).
    warnings: list[str] = []

    def payload(self) -> dict[str, Any]:
        out = super().payload()
        if not self.warnings:  # a run without warnings records what it always did
            del out["warnings"]
        return out


@register
class SettingsChanged(Event):
    """A fork's change of settings, after its copied prefix (see machine/decisions/fork.py)."""

    TYPE = "settings.changed"
    changes: dict[str, list[Any]]  # dotted key -> [old, new]
    config: dict[str, Any]


@register
class DatasetLoaded(Event):
    TYPE = "dataset.loaded"
    env: str
    train: list[str]
    selection: list[str]
    test: list[str]
    task_types: list[str]
    fingerprints: dict[str, str]
    steps_per_epoch: int
    total_steps: int
    # Where the items came from, as the environment reports it (split mode, files and their
    # sha256, ratio, seed, counts); None for environments that generate their items.
    source: dict[str, Any] | None = None


class RolloutRef(BaseModel):
    """A recorded rollout.scored, by what names it within its run: with the referring event's
    skill and item, (phase, step, batch) is one rollout. Not by seq, so two runs that differ
    only in rollouts they did not pay for (early reject) record the same reuses."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    phase: Phase
    step: int
    batch: int = 0


@register
class RolloutScored(Event):
    TYPE = "rollout.scored"
    phase: Phase
    step: int
    batch: int = 0
    skill_hash: str
    item_id: str
    hard: float
    soft: float
    fail_reason: str
    task_type: str
    trajectory_hash: str
    feedback: dict[str, Any] = Field(default_factory=dict)
    tokens: Tokens = Tokens()
    call_ids: list[str] = Field(default_factory=list)  # the target (and judge) calls
    judge_tokens: Tokens | None = None  # a judge scorer's calls (the task environment)
    # evaluation.reuse_rollouts: no call was made; this is the result of the recorded rollout
    # `reuse_of` names (same skill, same item), copied, with no tokens and no call ids
    # (machine/decisions/reuse.py says where a reuse applies).
    reuse_of: RolloutRef | None = None

    def payload(self) -> dict[str, Any]:
        # a rollout without a judge, paid for, records what it always did
        return _without_none(super().payload(), "judge_tokens", "reuse_of")


@register
class BaselineEvaluated(Event):
    TYPE = "baseline.evaluated"
    skill_hash: str
    n: int
    hard: float
    soft: float
    metric: str
    gate_score: float
    density: DensityBonus | None = None  # use_semantic_density: included in gate_score

    def payload(self) -> dict[str, Any]:
        return _without_none(super().payload(), "density")


@register
class EpochPlanned(Event):
    TYPE = "epoch.planned"
    epoch: int
    first_step: int
    seed: int
    # steps[i][a] = item ids of accumulation batch a of the epoch's i-th step
    steps: list[list[list[str]]]


class Minibatch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    source_type: Literal["failure", "success"]
    item_ids: list[str]


@register
class ReflectionPlanned(Event):
    TYPE = "reflection.planned"
    step: int
    epoch: int
    skill_hash: str
    rollout_n: int
    rollout_hard: float
    rollout_soft: float
    n_failures: int
    n_successes: int
    seed: int
    minibatches: list[Minibatch]


@register
class ReflectionProposed(Event):
    TYPE = "reflection.proposed"
    step: int
    minibatch_id: str
    source_type: Literal["failure", "success"]
    item_ids: list[str]
    ok: bool
    error: str = ""
    reasoning: str = ""
    edits: list[Edit] = Field(default_factory=list)
    truncated: int = 0
    failure_summary: list[dict[str, Any]] = Field(default_factory=list)
    success_patterns: list[str] = Field(default_factory=list)
    call: CallRecord
    reask: CallRecord | None = None  # the one re-ask after an unusable first reply
    # skill_update_mode rewrite_from_suggestions / full_rewrite_minibatch carry these instead
    suggestions: list[Suggestion] = Field(default_factory=list)
    skill_candidates: list[SkillCandidate] = Field(default_factory=list)
    appendix_notes: list[str] = Field(default_factory=list)  # skill-aware: execution lapses


class MergeNode(BaseModel):
    """One merge call of the hierarchy: which inputs (minibatch or node ids) went in."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    level: int
    group: Literal["failure", "success", "final"]
    inputs: list[str]
    ok: bool
    error: str = ""
    fallback: str = ""
    edits: list[Edit]
    call: CallRecord | None = None
    reask: CallRecord | None = None
    suggestions: list[Suggestion] = Field(default_factory=list)
    skill_candidates: list[SkillCandidate] = Field(default_factory=list)


@register
class PatchesMerged(Event):
    TYPE = "patches.merged"
    step: int
    nodes: list[MergeNode]
    root: str
    edits: list[Edit]
    suggestions: list[Suggestion] = Field(default_factory=list)
    skill_candidates: list[SkillCandidate] = Field(default_factory=list)


class RankingRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    ok: bool
    error: str = ""
    fallback: str = ""
    reasoning: str = ""
    raw_indices: list[Any] = Field(default_factory=list)
    invalid_indices: list[Any] = Field(default_factory=list)
    beyond_budget: list[int] = Field(default_factory=list)
    call: CallRecord
    reask: CallRecord | None = None


class BudgetDecision(BaseModel):
    """lr_control_mode autonomous: the optimizer's own choice of how many edits to apply."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ok: bool
    error: str = ""
    fallback: str = ""  # "zero": an unusable decision applies no edit (as the reference)
    requested: int | None = None
    reasoning: str = ""
    confidence: str = ""
    risk_notes: list[str] = Field(default_factory=list)
    call: CallRecord
    reask: CallRecord | None = None


@register
class EditsSelected(Event):
    TYPE = "edits.selected"
    step: int
    scheduler: str
    schedule_t: int
    schedule_total: int
    budget: int
    n_merged: int
    kept_indices: list[int]
    dropped_indices: list[int]
    edits: list[Edit]
    ranking: RankingRecord | None = None
    control: Literal["fixed", "autonomous", "none"] = "fixed"
    decision: BudgetDecision | None = None
    suggestions: list[Suggestion] = Field(default_factory=list)  # rewrite mode: the kept ones


class RewriteRecord(BaseModel):
    """The one rewrite call of rewrite_from_suggestions."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    ok: bool
    error: str = ""
    reasoning: str = ""
    change_summary: list[str] = Field(default_factory=list)
    call: CallRecord
    reask: CallRecord | None = None


class ApplyRow(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    index: int
    op: str
    target: str
    content_preview: str
    status: str


@register
class CandidateBuilt(Event):
    TYPE = "candidate.built"
    step: int
    parent_hash: str
    candidate_hash: str
    report: list[ApplyRow]
    n_applied: int
    n_skipped: int
    length: int
    mode: Literal["patch", "rewrite_from_suggestions", "full_rewrite_minibatch"] = "patch"
    rewrite: RewriteRecord | None = None


@register
class StepSkipped(Event):
    TYPE = "step.skipped"
    step: int
    epoch: int
    # reflection_unusable: every reflection reply was unusable (runs recorded since the rule)
    reason: Literal[
        "no_patches", "nothing_applied", "zero_budget", "no_rewrite", "reflection_unusable"
    ]
    skill_hash: str


def _without_none(out: dict[str, Any], *keys: str) -> dict[str, Any]:
    """Leave out optional fields added later while unset: a run that does not use them records
    what it always did."""
    for key in keys:
        if out.get(key) is None:
            out.pop(key, None)
    return out


class EarlyStop(BaseModel):
    """evaluation.early_reject: the selection rollout stopped once even the best possible scores
    on the unscored items could not pass the gate (machine/decisions/gate.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rule: Literal["strict", "paired"]  # the criterion bounded (the gate rule that decides)
    evaluated: int  # items scored when it stopped
    total: int  # items of the selection split
    # strict: the candidate's gate score had every unscored item scored the maximum;
    # paired: the mean per-item difference against the current skill, likewise
    bound: float
    threshold: float  # what the bound needed to exceed: the current score (strict), 0 (paired)


class DensityBonus(BaseModel):
    """evaluation.use_semantic_density (the reference's gate bonus): `leading` of the skill's
    `words` ([a-zA-Z0-9]+ tokens, lower-cased, outside the SLOW_UPDATE and APPENDIX regions)
    are leading words; the gate score includes bonus = weight x leading / words."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    words: int
    leading: int
    weight: float
    bonus: float


class PairedGate(BaseModel):
    """evaluation.gate_rule paired: per-item differences candidate - current skill on the
    selection split, in the gate metric; accept iff mean_diff > margin x se (exactly)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    applied: bool  # False: the strict rule decided (reason says why)
    margin: float
    n: int = 0
    mean_diff: float | None = None
    se: float | None = None  # sqrt(sample variance / n); None when n < 2
    reason: str = ""


@register
class CandidateEvaluated(Event):
    TYPE = "candidate.evaluated"
    step: int
    skill_hash: str
    n: int
    hard: float
    soft: float
    metric: str
    gate_score: float
    cache_hit: bool
    # evaluation.early_reject: the rollout stopped once the verdict was settled; n, hard, soft and
    # gate_score are then over the `early_stop.evaluated` items scored (None: a full pass).
    early_stop: EarlyStop | None = None
    density: DensityBonus | None = None  # use_semantic_density: included in gate_score

    def payload(self) -> dict[str, Any]:
        return _without_none(super().payload(), "early_stop", "density")


@register
class GateDecided(Event):
    TYPE = "gate.decided"
    step: int
    epoch: int
    candidate_hash: str
    action: Literal["accept_new_best", "accept", "reject", "force_accept"]
    metric: str
    use_gate: bool
    candidate_score: float
    current_score: float
    best_score: float
    rule: str
    paired: PairedGate | None = None  # evaluation.gate_rule paired: its statistics
    # use_semantic_density: the candidate's bonus, included in candidate_score (current_score
    # and best_score include their own skills' bonuses, recorded where they were measured)
    density: DensityBonus | None = None

    def payload(self) -> dict[str, Any]:
        return _without_none(super().payload(), "paired", "density")


class ConsolidationRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    ok: bool
    error: str = ""
    kept: bool = False  # only a non-empty, strictly shorter list replaces the notes
    before: int
    notes: list[str] = Field(default_factory=list)
    call: CallRecord
    reask: CallRecord | None = None


@register
class AppendixFlushed(Event):
    """Skill-aware reflection's execution-lapse notes, written into the APPENDIX region of the
    skill that is current after the step's verdict (accept, reject or skip alike)."""

    TYPE = "appendix.flushed"
    step: int
    epoch: int
    parent_hash: str
    skill_hash: str
    notes: list[str]
    added: list[str]
    duplicates: int
    total: int
    consolidation: ConsolidationRecord | None = None
    gated: bool = False  # appendix_gated: the new skill must pass the gate to become current


@register
class ReviewPlanned(Event):
    """Epoch end: the items on which the previous epoch's last skill and the current one are
    compared (slow update and meta skill share the comparison)."""

    TYPE = "review.planned"
    epoch: int
    prev_hash: str
    curr_hash: str
    policy: Literal["mixed", "changed", "unchanged"]
    target: int
    seed: int
    sample: list[str]
    scan: list[str]  # policy changed: the train items scanned, in order, to top up


class Pair(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    category: Literal["improved", "regressed", "persistent_fail", "stable_success"]


@register
class SlowUpdateDone(Event):
    TYPE = "slow_update.done"
    epoch: int
    action: Literal["placeholder", "force_accept", "gate", "no_content", "failed"]
    parent_hash: str
    skill_hash: str  # the skill with the new guidance (== parent when nothing was written)
    pairs: list[Pair] = Field(default_factory=list)
    content_hash: str = ""
    reasoning: str = ""
    error: str = ""
    call: CallRecord | None = None
    reask: CallRecord | None = None


@register
class MetaSkillDone(Event):
    TYPE = "meta_skill.done"
    epoch: int
    action: Literal["write", "no_content", "failed"]
    pairs: list[Pair] = Field(default_factory=list)
    content_hash: str = ""
    reasoning: str = ""
    error: str = ""
    call: CallRecord
    reask: CallRecord | None = None


@register
class UpdateGated(Event):
    """The gate verdict on a skill an epoch-end slow update or an appendix flush produced
    (slow_update_gate_with_selection / appendix_gated)."""

    TYPE = "update.gated"
    kind: Literal["slow_update", "appendix"]
    step: int  # the step of an appendix flush; the last step of the epoch for a slow update
    epoch: int
    skill_hash: str
    n: int
    hard: float
    soft: float
    gate_score: float
    cache_hit: bool
    action: Literal["accept_new_best", "accept", "reject", "force_accept"]
    current_score: float
    best_score: float
    rule: str
    early_stop: EarlyStop | None = None  # as in candidate.evaluated
    paired: PairedGate | None = None  # as in gate.decided
    density: DensityBonus | None = None  # as in candidate.evaluated

    def payload(self) -> dict[str, Any]:
        return _without_none(super().payload(), "early_stop", "paired", "density")


@register
class StepCompleted(Event):
    TYPE = "step.completed"
    step: int
    epoch: int
    action: str
    current_hash: str
    current_score: float
    best_hash: str
    best_score: float
    best_step: int


@register
class EpochCompleted(Event):
    TYPE = "epoch.completed"
    epoch: int
    last_step: int
    current_hash: str
    best_hash: str
    best_score: float


@register
class FinalEvaluated(Event):
    TYPE = "final.evaluated"
    split: Literal["selection", "test"]
    role: Literal["initial", "best", "final"]
    skill_hash: str
    n: int
    hard: float
    soft: float
    gate_score: float
    buckets: dict[str, ScoreBucket] = Field(default_factory=dict)
    reused: bool = False
    promoted: bool = False
    best_score_before: float | None = None
    density: DensityBonus | None = None  # the selection split's gate_score includes it

    def payload(self) -> dict[str, Any]:
        return _without_none(super().payload(), "density")


@register
class RunCompleted(Event):
    TYPE = "run.completed"
    best_hash: str
    best_score: float
    best_step: int
    final_hash: str
    steps: int
    accepts: int
    rejects: int
    skips: int


@register
class BudgetSet(Event):
    """New limits for this run from here on (run --max-usd / --max-tokens)."""

    TYPE = "budget.set"
    max_usd: float | None
    max_tokens: int | None


@register
class BudgetExhausted(Event):
    """The run stopped before a stage because spending reached a limit."""

    TYPE = "budget.exhausted"
    stage: str
    spent_usd: float | None
    spent_tokens: int
    max_usd: float | None
    max_tokens: int | None


@register
class StageFailed(Event):
    TYPE = "stage.failed"
    stage: str
    step: int
    error_type: str
    message: str


# -- bench runs (skillopt bench): kind `bench` in the runs table, never folded by the reducer --


class BenchArm(BaseModel):
    """One compared configuration of a bench: its target model and the skill it reads."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str  # the config file's stem, made unique
    config: dict[str, Any]  # resolved, secrets redacted (as run.created records it)
    config_sha256: str  # of the config file as read
    backend: str
    model: str
    skill_hash: str
    retry_cap: int
    fingerprint: str  # of the tasks as this configuration's environment builds them
    # The documentation modules its target read after the skill (env.options.skill_modules):
    # {"modules": [{"module", "source": command|dir|missing, "sha256"}], "sha256": of the
    # block}. None: no modules (every bench before them), and then not in the payload.
    context: dict[str, Any] | None = None


@register
class BenchStarted(Event):
    """The plan of a bench: what runs (configs x tasks); resuming it must not change it."""

    TYPE = "bench.started"
    run_name: str
    env: str
    arms: list[BenchArm]
    task_ids: list[str]
    source: dict[str, Any]  # where the tasks came from (file and sha256, or the shipped set)
    skillopt_version: str
    # What the user allowed to go wrong (a missing module with missing_modules: warn).
    warnings: list[str] = []

    def payload(self) -> dict[str, Any]:
        """A bench without modules or warnings records exactly what benches always did."""
        out = super().payload()
        out["arms"] = [_without_none(arm, "context") for arm in out["arms"]]
        if not self.warnings:
            del out["warnings"]
        return out


class BenchAttempt(BaseModel):
    """One generate or repair attempt; texts live in blobs (excerpts of stdout/stderr)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    attempt: int
    kind: Literal["generate", "repair"]
    outcome: Literal["working", "partial", "failed"]
    category: str  # "" when working; timeout, runtime_error, wrong_output, no_program
    detail: str
    exit_code: int | None
    tokens: Tokens
    same_as: int | None = None  # an earlier attempt with the identical program
    reply_hash: str
    program_hash: str | None  # None: the reply held no program
    stdout_hash: str
    stderr_hash: str
    call_id: str


@register
class BenchTask(Event):
    """One task worked to the end with one configuration (no wall time: see the timings table)."""

    TYPE = "bench.task"
    arm: int
    task_id: str
    task_type: str
    expected: str  # the expected output as compared
    outcome: Literal["working", "partial", "failed"]
    hard: float
    soft: float
    fail_reason: str
    attempts: list[BenchAttempt]
    trajectory_hash: str


class BenchTotals(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    arm: int
    runs: int
    succeeded: int
    first_attempt: int
    attempts: int
    generation_tokens: int
    input_tokens: int


@register
class BenchCompleted(Event):
    """Every task of the plan has a bench.task per configuration; the totals derive from them."""

    TYPE = "bench.completed"
    totals: list[BenchTotals]
