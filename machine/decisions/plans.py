"""Plans: the epoch's batches and a step's reflection minibatches, as pure functions of the
run seed. The order is a keyed-hash permutation: deterministic, so `replay --verify` can
re-derive every recorded plan, and it needs no random generator in the core."""

from __future__ import annotations

import math
from collections.abc import Sequence

from skillopt.machine.core.canonical import canonical_json, derive_seed, sha256_text


def seeded_order(ids: Sequence[str], seed: int) -> list[str]:
    """A permutation of `ids` fixed by `seed` (ties cannot happen: ids are unique)."""
    return sorted(ids, key=lambda i: sha256_text(canonical_json([seed, i])))


def steps_per_epoch(train_size: int, batch_size: int, accumulation: int) -> int:
    return math.ceil(train_size / (batch_size * accumulation))


def epoch_seed(run_seed: int, epoch: int) -> int:
    return derive_seed(run_seed, epoch, 0, "epoch_plan")


def reflection_seed(run_seed: int, epoch: int, step: int) -> int:
    return derive_seed(run_seed, epoch, step, "reflect")


def plan_epoch(
    train_ids: Sequence[str], seed: int, batch_size: int, accumulation: int
) -> list[list[list[str]]]:
    """One shuffled pass over train cut into steps x accumulation batches. A batch left empty
    at the end of the pass is refilled from the start of the pass with items its step does not
    already hold (none left: it stays empty, nothing is rolled out twice in a step)."""
    order = seeded_order(train_ids, seed)
    spe = steps_per_epoch(len(order), batch_size, accumulation)
    batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(spe * accumulation)]
    steps = [batches[s * accumulation : (s + 1) * accumulation] for s in range(spe)]
    for step in steps:
        used = {i for batch in step for i in batch}
        for k, batch in enumerate(step):
            if not batch:
                step[k] = [i for i in order if i not in used][:batch_size]
                used.update(step[k])
    return steps


def plan_minibatches(
    failures: Sequence[str], successes: Sequence[str], seed: int, size: int, failure_only: bool
) -> list[tuple[str, str, list[str]]]:
    """(id, source type, item ids) per minibatch: failures and successes shuffled apart."""
    out: list[tuple[str, str, list[str]]] = []
    groups = [("f", "failure", failures)] + ([] if failure_only else [("s", "success", successes)])
    for prefix, kind, ids in groups:
        order = seeded_order(ids, seed)
        for k, start in enumerate(range(0, len(order), size)):
            out.append((f"{prefix}{k}", kind, order[start : start + size]))
    return out


def split_warnings(sizes: dict[str, int], min_selection: int, eval_test: bool) -> list[str]:
    """What `init` warns about a run's splits: a selection split too small for the gate to
    tell skills apart, or no test split to report a held-out score on."""
    out: list[str] = []
    n = sizes.get("selection", 0)
    if n < min_selection:
        out.append(
            f"the selection split has {n} items (under evaluation.min_selection_items = "
            f"{min_selection}): every gate decides on {n} items; give it more rows "
            "(env.split_sizes or env.split_ratio)"
        )
    if not sizes.get("test") or not eval_test:
        out.append("no test split is evaluated: the report will have no held-out test score")
    return out
