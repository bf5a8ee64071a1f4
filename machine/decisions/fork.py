"""Forks: which settings may change after a copied prefix without contradicting it."""

from __future__ import annotations

from typing import Any

from skillopt.machine.config.schema import LEGACY
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.plans import steps_per_epoch

# Settings the prefix has already used to make recorded decisions: the data, its batches and
# seeds, and the gate's scale (current and best scores are recorded in gate-metric space).
FROZEN = (
    "env.",
    "train.batch_size",
    "train.accumulation",
    "train.seed",
    "train.train_size",
    "evaluation.gate_metric",
    "evaluation.gate_mixed_weight",
    "evaluation.use_semantic_density",  # the density bonus is in the recorded gate scores too
    "evaluation.semantic_density_weight",
    "evaluation.leading_words",
    "config_version",  # the rules the prefix's decisions were derived with
    "evaluation.sel_env_num",
    "evaluation.test_env_num",
)
# Once the final evaluation has begun, only these may still change.
FINAL_STAGE_OK = (
    "models.",
    "evaluation.eval_test",
    "train.workers",
    "gradient.workers",
    "train.executor",  # where the units run decides nothing either
    "ray.",
    "tracking.",  # where the run is mirrored decides nothing
)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= flatten(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): data}


def changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    """Changed keys; a key the old config predates, now written with the value it was read
    with (see recorded_config), is no change."""
    a, b = flatten(old), flatten(new)
    return {
        k: [a.get(k), b.get(k)]
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k) and not (k in LEGACY and k not in a and b.get(k) == LEGACY[k])
    }


def fork_problems(state: TrainerState, new_config: Any, diff: dict[str, list[Any]]) -> list[str]:
    """Why these changes would contradict what the prefix recorded (empty: they do not)."""
    problems: list[str] = []
    if state.completed is not None:
        problems.append("the prefix ends after run.completed; fork at an earlier seq")
    if state.dataset is None and diff:
        return problems  # nothing recorded depends on settings yet... except the dataset itself
    final_begun = state.final_selection is not None or bool(state.final_tests)
    for key in diff:
        if key.startswith(FROZEN) or key in FROZEN:
            problems.append(
                f"{key}: the prefix already used it (data, batches, seeds or the gate's scale)"
            )
        elif final_begun and not key.startswith(FINAL_STAGE_OK):
            problems.append(
                f"{key}: the final evaluation has begun; only models, workers and eval_test may change"
            )
    if "train.num_epochs" in diff and state.dataset is not None:
        t = new_config.train
        total = (
            steps_per_epoch(len(state.dataset.train), t.batch_size, t.accumulation) * t.num_epochs
        )
        started = state.steps_completed + (1 if state.progress is not None else 0)
        if total < started or t.num_epochs < max(state.plans, default=0):
            problems.append(
                f"train.num_epochs: {t.num_epochs} epochs end before the prefix's progress"
            )
    return problems
