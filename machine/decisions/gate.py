"""Cheaper and noise-aware gates, as pure functions of recorded scores.

**Exact early reject** (`evaluation.early_reject`). A gated skill's selection rollout stops as
soon as the gate's verdict is settled: even if every unscored item scored the maximum (hard 1,
soft 1, the Environment protocol's range), the skill could not pass. The bound is computed with
the very functions a full pass uses (`aggregate`: math.fsum, then one division; `gate_score`),
on the scored items plus (1.0, 1.0) for every unscored one. Each of those float operations is
correctly rounded, hence monotone non-decreasing in every item's hard and soft (the mixed
weights are clamped to [0, 1]), so the full pass's gate score can never exceed the bound: when
the bound does not beat the current score (the strict `>`, ties reject), neither would the full
pass. Under the paired rule the bound is on the sum of per-item differences, in exact rationals:
acceptance needs a mean difference > margin x se >= 0, so a best-case sum <= 0 settles a reject.

The stop is decided from recorded rollouts only: `pending` (the transition table's view) is
empty once the scored items settle the verdict, so a run killed anywhere resumes to the same
events, and `replay --verify` re-derives the stop point and the bound. Items are evaluated in a
derivable order: the selection split's (`plan`) or, with `weakest_first`, the items the current
skill scores lowest on first (a losing candidate's losses, which are what settles a reject,
show mostly there), ties in split order. A stopped skill is not a measured skill: it never enters
the selection cache, and a later identical candidate continues from its scored items.

**Paired gate** (`evaluation.gate_rule: paired`, `gate_margin` k). On the selection items,
d_i = g(candidate_i) - g(current_i), g the per-item gate metric (hard, soft, or the mixed
(1-w) hard + w soft). With n items, mean = sum(d)/n, the sample variance
var = sum((d_i - mean)^2)/(n - 1) and se = sqrt(var/n), the candidate passes iff
mean > k x se, decided exactly (rationals: mean > 0 and, when k > 0, mean^2 > k^2 var / n).
n < 2: the variance is unknown, so a margin k > 0 rejects and k = 0 needs mean > 0. Zero
variance (every item moved by the same amount) passes iff mean > 0: no noise to allow for.
With k = 0 the rule is the strict one on the per-item mean. The current skill's per-item scores
are its recorded selection rollouts; a current skill whose score was carried (a slow-update
placeholder or force-accept, an ungated appendix flush) has none, so the stage graph rolls it out
first (`EvaluateReference`: its rollout.scored events, nothing else; paid once per such skill).
Should a gate still lack them (a fork that switched the rule on between evaluation and gate),
the strict rule decides and the verdict records that the paired rule was not applied, and why.
Early reject under the paired rule bounds only the necessary condition (mean > 0); the margin
is not used by the bound, so it never stops a candidate that only the margin rejects.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from skillopt.machine.core.events import EarlyStop, PairedGate
from skillopt.machine.core.state import ItemScore, TrainerState, eval_key
from skillopt.machine.decisions.scoring import Verdict, aggregate, decide_gate, gate_score
from skillopt.machine.decisions.steps import post_verdict

ITEM_MAX = 1.0  # the protocol's best hard and soft score of one item


@dataclass(frozen=True)
class Baseline:
    """What a gated skill is compared with."""

    current_hash: str
    current_score: float
    best_score: float


def baseline(state: TrainerState, kind: str) -> Baseline:
    """kind `step` (a step's candidate), `slow_update`, or `appendix` (compared with the skill
    that is current after the step's own verdict)."""
    if kind == "appendix":
        return Baseline(*post_verdict(state))
    return Baseline(state.current_hash, state.current_score, state.best_score)


def active(state: TrainerState) -> bool:
    """Early reject applies (never with the gate off: every candidate is force-accepted)."""
    c = state.cfg.evaluation
    return c.early_reject and c.use_gate


def item_value(hard: float, soft: float, metric: str, mixed_weight: float) -> float:
    return gate_score(hard, soft, metric, mixed_weight)


def _values(state: TrainerState, rows: Mapping[str, ItemScore]) -> dict[str, float]:
    c = state.cfg.evaluation
    return {
        i: item_value(r.hard, r.soft, c.gate_metric, c.gate_mixed_weight) for i, r in rows.items()
    }


def _selection_rows(state: TrainerState, skill_hash: str) -> dict[str, ItemScore]:
    """The skill's scored selection items, in split order."""
    assert state.dataset is not None
    scored = state.scored(eval_key("selection", skill_hash))
    return {i: scored[i] for i in state.dataset.selection if i in scored}


def reference(state: TrainerState, current_hash: str) -> dict[str, float] | None:
    """The current skill's per-item gate values on every selection item (None: some missing)."""
    assert state.dataset is not None
    rows = _selection_rows(state, current_hash)
    if len(rows) != len(state.dataset.selection):
        return None
    return _values(state, rows)


def reference_pending(state: TrainerState, kind: str) -> tuple[str, tuple[str, ...]]:
    """(current skill, its unscored selection items) when the paired rule will compare with it."""
    c = state.cfg.evaluation
    if not (c.use_gate and c.gate_rule == "paired"):
        return "", ()
    assert state.dataset is not None
    current = baseline(state, kind).current_hash
    done = state.scored(eval_key("selection", current))
    return current, tuple(i for i in state.dataset.selection if i not in done)


def _paired_applies(state: TrainerState, base: Baseline) -> dict[str, float] | None:
    if state.cfg.evaluation.gate_rule != "paired":
        return None
    return reference(state, base.current_hash)


# -- early reject ---------------------------------------------------------------------------


def strict_bound(scored: list[tuple[float, float]], total: int, metric: str, w: float) -> float:
    """The gate score a full pass would get if every unscored item scored the maximum: an upper
    bound of the full pass's score (the aggregate is monotone in every item)."""
    best_case = scored + [(ITEM_MAX, ITEM_MAX)] * (total - len(scored))
    hard, soft, _ = aggregate(best_case)
    return gate_score(hard, soft, metric, w)


@dataclass(frozen=True)
class _Bound:
    rule: str
    bound: float
    threshold: float
    settled: bool  # the bound cannot pass the gate: a reject whatever the unscored items score


def _bound(
    state: TrainerState, rows: Mapping[str, ItemScore], base: Baseline, zeros: int = 0
) -> _Bound:
    """The bound after the scored `rows` and `zeros` more items at the minimum (0, 0), every
    other item at the maximum."""
    assert state.dataset is not None
    c = state.cfg.evaluation
    total = len(state.dataset.selection)
    unscored = total - len(rows) - zeros
    ref = _paired_applies(state, base)
    if ref is not None:
        item_max = item_value(ITEM_MAX, ITEM_MAX, c.gate_metric, c.gate_mixed_weight)
        item_min = item_value(0.0, 0.0, c.gate_metric, c.gate_mixed_weight)
        best = sum((Fraction(v) for v in _values(state, rows).values()), Fraction(0))
        best += zeros * Fraction(item_min) + unscored * Fraction(item_max)
        best -= sum((Fraction(r) for r in ref.values()), Fraction(0))
        return _Bound("paired", float(best / total), 0.0, best <= 0)
    pairs = [(r.hard, r.soft) for r in rows.values()] + [(0.0, 0.0)] * zeros
    bound = strict_bound(pairs, total, c.gate_metric, c.gate_mixed_weight)
    if c.use_semantic_density:
        # The skill's density bonus is weight x a share <= 1, so + weight keeps an upper bound
        # (float products and sums are monotone) without reading the skill's text here.
        bound += c.semantic_density_weight
    return _Bound("strict", bound, base.current_score, not bound > base.current_score)


def _open(state: TrainerState, skill_hash: str) -> dict[str, ItemScore] | None:
    """The skill's scored selection items when an early stop is still possible, else None (the
    option is off, every item is scored, or a score is outside the range the bound assumes)."""
    if not active(state):
        return None
    assert state.dataset is not None
    rows = _selection_rows(state, skill_hash)
    if len(rows) == len(state.dataset.selection):
        return None  # nothing left to skip: the ordinary verdict
    if any(not (0.0 <= r.hard <= ITEM_MAX and 0.0 <= r.soft <= ITEM_MAX) for r in rows.values()):
        return None  # out of the protocol's range: no bound holds, evaluate in full
    return rows


def early_stop(state: TrainerState, skill_hash: str, kind: str) -> EarlyStop | None:
    """The early stop the recorded rollouts of `skill_hash` settle (None: go on, or a full pass)."""
    rows = _open(state, skill_hash)
    if rows is None:
        return None
    b = _bound(state, rows, baseline(state, kind))
    if not b.settled:
        return None
    assert state.dataset is not None
    total = len(state.dataset.selection)
    return EarlyStop(
        rule=b.rule,  # type: ignore[arg-type]
        evaluated=len(rows),
        total=total,
        bound=b.bound,
        threshold=b.threshold,
    )


def horizon(state: TrainerState, skill_hash: str, kind: str) -> int | None:
    """The fewest further items after which an early stop is possible (were they all to score
    the minimum); None when none is. A handler rolls that many at once: no stop can fall inside
    such a chunk, so nothing is rolled past a stop, and concurrency is kept until the end."""
    rows = _open(state, skill_hash)
    if rows is None:
        return None
    assert state.dataset is not None
    base = baseline(state, kind)
    remaining = len(state.dataset.selection) - len(rows)
    if not _bound(state, rows, base, remaining).settled:
        return None
    low, high = 0, remaining  # settled at `high`; the bound only falls as zeros are added
    while high - low > 1:
        mid = (low + high) // 2
        if _bound(state, rows, base, mid).settled:
            high = mid
        else:
            low = mid
    return high


def order(state: TrainerState, kind: str) -> list[str]:
    """The order a gated skill's selection items are evaluated in."""
    assert state.dataset is not None
    ids = list(state.dataset.selection)
    c = state.cfg.evaluation
    if not active(state) or c.early_reject_order == "plan":
        return ids
    current = _values(state, _selection_rows(state, baseline(state, kind).current_hash))
    top = item_value(ITEM_MAX, ITEM_MAX, c.gate_metric, c.gate_mixed_weight)
    rank = {i: k for k, i in enumerate(ids)}
    return sorted(ids, key=lambda i: (current.get(i, top), rank[i]))


def pending(state: TrainerState, skill_hash: str, kind: str) -> tuple[str, ...]:
    """The selection items still to roll out for a gated skill, in order; () once the recorded
    ones settle an early reject."""
    assert state.dataset is not None
    done = state.scored(eval_key("selection", skill_hash))
    if not active(state):
        return tuple(i for i in state.dataset.selection if i not in done)
    if early_stop(state, skill_hash, kind) is not None:
        return ()
    return tuple(i for i in order(state, kind) if i not in done)


@dataclass(frozen=True)
class Stopper:
    """For a handler rolling a gated skill out: when to stop, and how many items to roll next."""

    skill_hash: str
    kind: str

    def settled(self, state: TrainerState) -> bool:
        return early_stop(state, self.skill_hash, self.kind) is not None

    def horizon(self, state: TrainerState) -> int | None:
        return horizon(state, self.skill_hash, self.kind)


def stopper(state: TrainerState, skill_hash: str, kind: str) -> Stopper | None:
    """The handler's stopper, or None when early reject does not apply."""
    return Stopper(skill_hash, kind) if active(state) else None


def evaluated_scores(
    state: TrainerState, skill_hash: str, stop: EarlyStop | None
) -> tuple[float, float, int]:
    """(hard, soft, n) of a gated skill: every selection item, or the scored ones after a stop."""
    assert state.dataset is not None
    rows = _selection_rows(state, skill_hash)
    if stop is None:
        missing = [i for i in state.dataset.selection if i not in rows]
        if missing:
            raise KeyError(f"selection items of {skill_hash[:12]} not scored: {missing[:3]}")
    return aggregate((r.hard, r.soft) for r in rows.values())


# -- the paired statistic -------------------------------------------------------------------


@dataclass(frozen=True)
class PairedStats:
    n: int
    mean: Fraction
    var: Fraction | None  # sample variance; None when n < 2
    margin: float

    @property
    def se(self) -> float | None:
        return None if self.var is None else math.sqrt(float(self.var / self.n))

    def passes(self) -> bool:
        """mean > margin x se, exactly."""
        if self.mean <= 0:
            return False
        if self.margin == 0:
            return True
        if self.var is None:
            return False  # the noise cannot be estimated from one item
        return self.mean * self.mean > Fraction(self.margin) ** 2 * self.var / self.n


def paired_stats(diffs: list[Fraction], margin: float) -> PairedStats:
    n = len(diffs)
    if n == 0:
        return PairedStats(0, Fraction(0), None, margin)
    mean = sum(diffs, Fraction(0)) / n
    var = sum(((d - mean) ** 2 for d in diffs), Fraction(0)) / (n - 1) if n >= 2 else None
    return PairedStats(n, mean, var, margin)


def differences(cand: Mapping[str, float], ref: Mapping[str, float]) -> list[Fraction]:
    return [Fraction(cand[i]) - Fraction(r) for i, r in ref.items()]


# -- the verdict ----------------------------------------------------------------------------


def _early_rule(stop: EarlyStop) -> str:
    head = f"early reject after {stop.evaluated} of {stop.total} items:"
    if stop.rule == "paired":
        return f"{head} best reachable mean per-item gain {stop.bound:+.4f} <= 0 (paired rule)"
    return (
        f"{head} best reachable {stop.bound:.4f} <= current {stop.threshold:.4f} "
        "(strict >; ties reject)"
    )


def verdict(
    state: TrainerState,
    skill_hash: str,
    candidate_score: float,
    stop: EarlyStop | None,
    base: Baseline,
) -> tuple[Verdict, PairedGate | None]:
    """The gate's verdict on a gated skill (a step's candidate, a slow update, an appendix)."""
    c = state.cfg.evaluation
    strict = decide_gate(candidate_score, base.current_score, base.best_score, c.use_gate)
    if not c.use_gate:
        return strict, None
    if stop is not None:
        return Verdict("reject", _early_rule(stop), False, False), None
    if c.gate_rule != "paired":
        return strict, None
    assert state.dataset is not None
    ref = reference(state, base.current_hash)
    cand = _values(state, _selection_rows(state, skill_hash))
    if ref is None or len(cand) != len(ref):
        who = "current skill" if ref is None else "candidate"
        reason = f"the {who} has no selection score on every item (a carried score)"
        rule = f"{strict.rule}; paired rule not applied: {reason}"
        v = Verdict(strict.action, rule, strict.becomes_current, strict.becomes_best)
        return v, PairedGate(applied=False, margin=c.gate_margin, reason=reason)
    stats = paired_stats(differences(cand, ref), c.gate_margin)
    se = stats.se
    mean = float(stats.mean)
    record = PairedGate(applied=True, margin=c.gate_margin, n=stats.n, mean_diff=mean, se=se)
    noise = f"{c.gate_margin:g} x se {'n/a (n<2)' if se is None else f'{se:.4f}'}"
    head = f"paired: mean per-item gain {mean:+.4f}"
    if not stats.passes():
        rule = f"{head} <= {noise} over {stats.n} items (candidate {candidate_score:.4f})"
        return Verdict("reject", rule, False, False), record
    new_best = candidate_score > base.best_score
    rule = (
        f"{head} > {noise} over {stats.n} items; candidate {candidate_score:.4f} "
        f"{'>' if new_best else '<='} best {base.best_score:.4f}"
    )
    return Verdict("accept_new_best" if new_best else "accept", rule, True, new_best), record
