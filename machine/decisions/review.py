"""The epoch-end comparison: the previous epoch's last skill against the current one, on the
same train items, as pairs (improved, regressed, persistent_fail, stable_success).

The slow update and the meta skill share it. Policy `changed` keeps improved and regressed
pairs and tops up by scanning the rest of the train split once, in the recorded order, a chunk
at a time (each chunk as large as the pairs still missing), so the scan is resumable.
"""

from __future__ import annotations

from skillopt.machine.core.canonical import derive_seed
from skillopt.machine.core.events import Pair, ReviewPlanned
from skillopt.machine.core.state import ItemScore, TrainerState, eval_key
from skillopt.machine.decisions.plans import seeded_order
from skillopt.machine.decisions.scoring import is_failure

KEEP = {
    "mixed": ("improved", "regressed", "persistent_fail", "stable_success"),
    "changed": ("improved", "regressed"),
    "unchanged": ("persistent_fail", "stable_success"),
}


def review_seed(run_seed: int, epoch: int) -> int:
    return derive_seed(run_seed, epoch, 0, "review")


def plan_review(
    train_ids: list[str], run_seed: int, epoch: int, target: int, policy: str
) -> tuple[int, list[str], list[str]]:
    """(seed, sample, scan): the first `target` items of a seeded order, and the rest to scan
    when the policy tops up."""
    seed = review_seed(run_seed, epoch)
    order = seeded_order(train_ids, seed)
    return seed, order[:target], (order[target:] if policy == "changed" else [])


def category(prev: ItemScore, curr: ItemScore) -> str:
    was, now = not is_failure(prev.hard), not is_failure(curr.hard)
    if was and now:
        return "stable_success"
    if not was and not now:
        return "persistent_fail"
    return "improved" if now else "regressed"


def _scores(state: TrainerState, skill_hash: str) -> dict[str, ItemScore]:
    return dict(state.scored(eval_key("review", skill_hash)))


def _pairs(state: TrainerState, plan: ReviewPlanned, ids: list[str]) -> list[Pair]:
    prev, curr = _scores(state, plan.prev_hash), _scores(state, plan.curr_hash)
    return [
        Pair(id=i, category=category(prev[i], curr[i]))  # type: ignore[arg-type]
        for i in ids
        if i in prev and i in curr
    ]


def window(state: TrainerState, plan: ReviewPlanned) -> list[str]:
    """The items compared so far: the sample, plus the scan chunks the policy has asked for."""
    ids = list(plan.sample)
    # One skill (prev == curr) is scored once per item: no pair can change, nothing to scan for.
    rest = list(plan.scan) if plan.prev_hash != plan.curr_hash else []
    while rest:
        pairs = _pairs(state, plan, ids)
        if len(pairs) < len(ids):
            break  # the window is not scored yet
        kept = sum(1 for p in pairs if p.category in KEEP[plan.policy])
        missing = plan.target - kept
        if missing <= 0:
            break
        ids += rest[:missing]
        rest = rest[missing:]
    return ids


def pending(state: TrainerState, plan: ReviewPlanned) -> tuple[tuple[str, str], ...]:
    """(skill hash, item id) still to roll out; one skill when both hashes are the same."""
    ids = window(state, plan)
    hashes = dict.fromkeys([plan.prev_hash, plan.curr_hash])
    return tuple((h, i) for h in hashes for i in ids if i not in _scores(state, h))


def pairs(state: TrainerState, plan: ReviewPlanned) -> list[Pair]:
    """The comparison pairs the policy keeps, at most `target`."""
    kept = [p for p in _pairs(state, plan, window(state, plan)) if p.category in KEEP[plan.policy]]
    return kept[: plan.target]
