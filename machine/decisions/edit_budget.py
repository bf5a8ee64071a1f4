"""The edit-budget schedule ("learning rate"): same formulas and rounding as the reference."""

from __future__ import annotations

import math

AUTONOMOUS_BUDGET = 999  # the reference's `autonomous` scheduler: no practical limit


def edit_budget(
    scheduler: str, max_budget: int, min_budget: int, t: int, total: int, parity: bool = True
) -> int:
    """Budget of the t-th select (1-based) out of `total`; Python's round (banker's) on purpose.

    `parity` (config_version >= 3) is the reference's guard `total <= 1`: a one-step run gets
    the max. Before, one step decayed to the min (progress 1/1), unlike the reference."""
    if scheduler == "autonomous":
        return AUTONOMOUS_BUDGET
    if scheduler == "constant" or total <= (1 if parity else 0):
        return max_budget
    progress = min(t, total) / total
    if scheduler == "linear":
        return max(min_budget, round(max_budget + (min_budget - max_budget) * progress))
    if scheduler == "cosine":
        value = min_budget + 0.5 * (max_budget - min_budget) * (1 + math.cos(math.pi * progress))
        return max(min_budget, round(value))
    raise ValueError(f"unknown scheduler {scheduler!r}")
