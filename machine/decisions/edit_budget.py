"""The edit-budget schedule ("learning rate"): same formulas and rounding as the reference."""

from __future__ import annotations

import math


def edit_budget(scheduler: str, max_budget: int, min_budget: int, t: int, total: int) -> int:
    """Budget of the t-th select (1-based) out of `total`; Python's round (banker's) on purpose."""
    if scheduler == "constant" or total <= 0:
        return max_budget
    progress = min(t, total) / total
    if scheduler == "linear":
        return max(min_budget, round(max_budget + (min_budget - max_budget) * progress))
    if scheduler == "cosine":
        value = min_budget + 0.5 * (max_budget - min_budget) * (1 + math.cos(math.pi * progress))
        return max(min_budget, round(value))
    raise ValueError(f"unknown scheduler {scheduler!r}")
