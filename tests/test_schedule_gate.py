"""machine/decisions/edit_budget.py (edit budget) and machine/decisions/scoring.py (gate metric, verdict, aggregates).

Reference: trainer-semantics.md sections 2.6 (gate) and 2.8 (scheduler). Expected budgets are
worked out by hand in the comments; Python's round() is banker's rounding (x.5 -> even).
"""

from __future__ import annotations

import pytest

from skillopt.machine.decisions.edit_budget import edit_budget
from skillopt.machine.decisions.scoring import (
    aggregate,
    buckets,
    decide_gate,
    gate_score,
    is_failure,
    mean,
)

# --- edit_budget ----------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0, 1, 2, 5, 50])
def test_constant_is_always_the_max(t: int) -> None:
    assert edit_budget("constant", 4, 2, t, 5) == 4


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0, 4),  # 4 + (2-4)*0/4   = 4.0
        (1, 4),  # 4 + (2-4)*1/4   = 3.5 -> 4 (banker's: 4 is even)
        (2, 3),  # 4 + (2-4)*2/4   = 3.0
        (3, 2),  # 4 + (2-4)*3/4   = 2.5 -> 2 (banker's: 2 is even; half-up would give 3)
        (4, 2),  # 4 + (2-4)*4/4   = 2.0
        (5, 2),  # t > T clamps to T
        (40, 2),
    ],
)
def test_linear_max4_min2_over_4(t: int, expected: int) -> None:
    assert edit_budget("linear", 4, 2, t, 4) == expected


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (1, 6),  # 6 - 5*1/10 = 5.5 -> 6
        (3, 4),  # 6 - 5*3/10 = 4.5 -> 4
        (5, 4),  # 6 - 5*5/10 = 3.5 -> 4
        (7, 2),  # 6 - 5*7/10 = 2.5 -> 2
        (9, 2),  # 6 - 5*9/10 = 1.5 -> 2
        (10, 1),  # 6 - 5 = 1
        (11, 1),  # clamped
    ],
)
def test_linear_bankers_rounding_max6_min1_over_10(t: int, expected: int) -> None:
    assert edit_budget("linear", 6, 1, t, 10) == expected


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (1, 4),  # 4 - 4*1/8 = 3.5 -> 4
        (3, 2),  # 4 - 4*3/8 = 2.5 -> 2
        (5, 2),  # 4 - 4*5/8 = 1.5 -> 2
        (7, 0),  # 4 - 4*7/8 = 0.5 -> 0
        (8, 0),
    ],
)
def test_linear_can_reach_a_zero_floor(t: int, expected: int) -> None:
    assert edit_budget("linear", 4, 0, t, 8) == expected


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0, 4),  # 2 + 0.5*2*(1 + cos 0)      = 4
        (1, 4),  # 2 + 1*(1 + cos(pi/4))      = 3.707 -> 4
        (2, 3),  # 2 + 1*(1 + cos(pi/2))      = 3.0
        (3, 2),  # 2 + 1*(1 + cos(3pi/4))     = 2.293 -> 2
        (4, 2),  # 2 + 1*(1 + cos(pi))        = 2
        (6, 2),  # t > T clamps to T
        (100, 2),
    ],
)
def test_cosine_max4_min2_over_4(t: int, expected: int) -> None:
    assert edit_budget("cosine", 4, 2, t, 4) == expected


@pytest.mark.parametrize(
    ("max_budget", "min_budget", "t", "total", "expected"),
    [
        (3, 2, 2, 4, 2),  # 2 + 0.5*1*(1 + cos(pi/2)) = 2.5 -> 2
        (2, 1, 1, 2, 2),  # 1 + 0.5*1*(1 + cos(pi/2)) = 1.5 -> 2
        (1, 0, 3, 6, 0),  # 0 + 0.5*1*(1 + cos(pi/2)) = 0.5 -> 0
        (5, 0, 5, 10, 2),  # 0 + 0.5*5*1 = 2.5 -> 2
        (7, 0, 2, 4, 4),  # 0 + 0.5*7*1 = 3.5 -> 4
    ],
)
def test_cosine_bankers_rounding_at_the_midpoint(
    max_budget: int, min_budget: int, t: int, total: int, expected: int
) -> None:
    assert edit_budget("cosine", max_budget, min_budget, t, total) == expected


@pytest.mark.parametrize("scheduler", ["constant", "linear", "cosine"])
def test_zero_total_gives_the_max(scheduler: str) -> None:
    assert edit_budget(scheduler, 5, 1, 3, 0) == 5


def test_equal_min_and_max_is_flat() -> None:
    assert [edit_budget("cosine", 3, 3, t, 5) for t in range(7)] == [3] * 7
    assert [edit_budget("linear", 3, 3, t, 5) for t in range(7)] == [3] * 7


def test_unknown_scheduler_raises() -> None:
    with pytest.raises(ValueError, match="unknown scheduler 'step'"):
        edit_budget("step", 4, 2, 1, 4)


# --- gate_score -----------------------------------------------------------------------------


def test_gate_score_hard_and_soft() -> None:
    assert gate_score(0.25, 0.75, "hard", 0.5) == 0.25
    assert gate_score(0.25, 0.75, "soft", 0.5) == 0.75


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        (0.0, 0.2),  # all hard
        (0.25, 0.35),  # 0.75*0.2 + 0.25*0.8
        (0.5, 0.5),  # 0.5*0.2 + 0.5*0.8
        (1.0, 0.8),  # all soft
        (1.5, 0.8),  # clamped to 1
        (-0.5, 0.2),  # clamped to 0
    ],
)
def test_gate_score_mixed_with_clamped_weight(weight: float, expected: float) -> None:
    assert gate_score(0.2, 0.8, "mixed", weight) == pytest.approx(expected, abs=1e-12)


def test_gate_score_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown gate metric 'f1'"):
        gate_score(1.0, 1.0, "f1", 0.5)


# --- decide_gate ----------------------------------------------------------------------------


def test_candidate_above_current_and_best_is_new_best() -> None:
    v = decide_gate(0.7, 0.5, 0.5, use_gate=True)
    assert (v.action, v.becomes_current, v.becomes_best) == ("accept_new_best", True, True)
    assert "0.7000" in v.rule and "0.5000" in v.rule


def test_candidate_above_current_but_not_best_is_plain_accept() -> None:
    v = decide_gate(0.6, 0.5, 0.8, use_gate=True)
    assert (v.action, v.becomes_current, v.becomes_best) == ("accept", True, False)


def test_candidate_above_current_equal_to_best_is_plain_accept() -> None:
    v = decide_gate(0.8, 0.5, 0.8, use_gate=True)
    assert (v.action, v.becomes_current, v.becomes_best) == ("accept", True, False)


def test_tie_with_current_rejects() -> None:
    v = decide_gate(0.5, 0.5, 0.5, use_gate=True)
    assert (v.action, v.becomes_current, v.becomes_best) == ("reject", False, False)
    assert "ties reject" in v.rule


def test_candidate_below_current_rejects_even_if_above_best() -> None:
    # current > best cannot happen with the gate on, but the verdict is still by current.
    v = decide_gate(0.6, 0.7, 0.4, use_gate=True)
    assert (v.action, v.becomes_current, v.becomes_best) == ("reject", False, False)


def test_tiny_improvement_is_strictly_greater() -> None:
    v = decide_gate(0.5 + 1e-12, 0.5, 0.5, use_gate=True)
    assert v.action == "accept_new_best"


@pytest.mark.parametrize(
    ("candidate", "best", "becomes_best"),
    [
        (0.9, 0.5, True),
        (0.5, 0.5, False),  # tie with best is not a new best
        (0.1, 0.5, False),  # worse than best: still force-accepted as current
    ],
)
def test_gate_off_force_accepts_and_tracks_best_strictly(
    candidate: float, best: float, becomes_best: bool
) -> None:
    v = decide_gate(candidate, 0.5, best, use_gate=False)
    assert v.action == "force_accept"
    assert v.becomes_current is True
    assert v.becomes_best is becomes_best
    assert v.rule.startswith("gate off")


def test_gate_off_sequence_tracks_the_running_best() -> None:
    current, best = 0.5, 0.5
    bests = []
    for candidate in (0.4, 0.6, 0.55, 0.6, 0.7):
        v = decide_gate(candidate, current, best, use_gate=False)
        assert v.action == "force_accept"
        current = candidate
        if v.becomes_best:
            best = candidate
        bests.append(best)
    assert bests == [0.5, 0.6, 0.6, 0.6, 0.7]
    assert current == 0.7


# --- aggregate / mean / buckets -------------------------------------------------------------


def test_mean_of_nothing_is_zero() -> None:
    assert mean([]) == 0.0


def test_mean_is_exactly_summed() -> None:
    # A naive sum() of ten 0.1 is 0.9999999999999999; fsum gives exactly 1.0.
    assert mean([0.1] * 10) == 0.1


def test_aggregate() -> None:
    assert aggregate([(1.0, 0.5), (0.0, 0.25), (1.0, 0.75), (0.0, 0.5)]) == (0.5, 0.5, 4)
    assert aggregate([]) == (0.0, 0.0, 0)
    assert aggregate(iter([(1.0, 1.0)])) == (1.0, 1.0, 1)


def test_is_failure() -> None:
    assert is_failure(0.0)
    assert not is_failure(1.0)
    assert not is_failure(0.5)


def test_buckets_per_task_type_and_overall() -> None:
    rows = [
        ("math", 1.0, 1.0),
        ("code", 0.0, 0.5),
        ("math", 0.0, 0.5),
        ("", 1.0, 0.25),  # no task type -> "other"
    ]
    assert buckets(rows) == {
        "code": {"total": 1, "hard": 0.0, "soft": 0.5},
        "math": {"total": 2, "hard": 0.5, "soft": 0.75},
        "other": {"total": 1, "hard": 1.0, "soft": 0.25},
        "overall": {"total": 4, "hard": 0.5, "soft": 0.5625},
    }
    assert list(buckets(rows)) == ["code", "math", "other", "overall"]


def test_buckets_of_nothing() -> None:
    assert buckets([]) == {}
