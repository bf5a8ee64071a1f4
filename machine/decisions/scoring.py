"""Aggregate scores and the validation gate: pure decisions from recorded numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FAIL_EPSILON = 1e-9


def is_failure(hard: float) -> bool:
    return hard < FAIL_EPSILON


def mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def aggregate(scores: Iterable[tuple[float, float]]) -> tuple[float, float, int]:
    """(mean hard, mean soft, n) of (hard, soft) pairs."""
    pairs = list(scores)
    return mean([h for h, _ in pairs]), mean([s for _, s in pairs]), len(pairs)


def gate_score(hard: float, soft: float, metric: str, mixed_weight: float) -> float:
    if metric == "hard":
        return hard
    if metric == "soft":
        return soft
    if metric == "mixed":
        w = min(1.0, max(0.0, mixed_weight))
        return (1.0 - w) * hard + w * soft
    raise ValueError(f"unknown gate metric {metric!r}")


def buckets(rows: Iterable[tuple[str, float, float]]) -> dict[str, dict[str, float | int]]:
    """Per task type (and `overall`): total, mean hard, mean soft; keys sorted."""
    grouped: dict[str, list[tuple[float, float]]] = {}
    for task_type, hard, soft in rows:
        for key in (task_type or "other", "overall"):
            grouped.setdefault(key, []).append((hard, soft))
    out: dict[str, dict[str, float | int]] = {}
    for key in sorted(grouped):
        hard, soft, n = aggregate(grouped[key])
        out[key] = {"total": n, "hard": hard, "soft": soft}
    return out


@dataclass(frozen=True)
class Verdict:
    action: str
    rule: str
    becomes_current: bool
    becomes_best: bool


def decide_gate(candidate: float, current: float, best: float, use_gate: bool) -> Verdict:
    """Strict `>`: ties reject. With the gate off every candidate is force-accepted."""
    new_best = candidate > best
    if not use_gate:
        rule = f"gate off: force-accept; candidate {candidate:.4f} {'>' if new_best else '<='} best {best:.4f}"
        return Verdict("force_accept", rule, True, new_best)
    if candidate > current:
        if new_best:
            rule = f"candidate {candidate:.4f} > current {current:.4f} and > best {best:.4f}"
            return Verdict("accept_new_best", rule, True, True)
        rule = f"candidate {candidate:.4f} > current {current:.4f}, <= best {best:.4f}"
        return Verdict("accept", rule, True, False)
    rule = f"candidate {candidate:.4f} <= current {current:.4f} (strict >; ties reject)"
    return Verdict("reject", rule, False, False)


def effects(action: str, candidate: float, best: float) -> tuple[bool, bool]:
    """(becomes current, becomes best) of a recorded verdict; force_accept is a new best only
    when strictly better (whatever rule decided, a rejected skill is neither)."""
    if action == "reject":
        return False, False
    if action == "force_accept":
        return True, candidate > best
    return True, action == "accept_new_best"
