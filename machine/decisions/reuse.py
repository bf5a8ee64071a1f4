"""Reuse of recorded rollouts (evaluation.reuse_rollouts, on from config_version 4).

A rollout is a function of the skill and the item (the environment protocol's rollout takes
nothing else), so a stage that needs a rollout a recorded one already gave takes that result
instead of paying for it again: it records a `rollout.scored` whose `reuse_of` names the recorded
rollout (phase, step, batch; the skill and item are the event's own), its result copied, no
tokens and no call ids.

Where it applies. Selection and test rollouts are keyed by skill and never repeated within their
phase (a final check or the test of an identical skill reads the scores already recorded), and
the three splits hold different items; so the one stage that needs again a rollout another stage
recorded is the epoch-end review, which rolls skills out on train items: a train step rolled the
same items out with its parent skill. Reviews of an earlier epoch are already read back (the
review's scores are keyed by skill). Train rollouts are never reused: reflection wants fresh
trajectories of the step's batch.

The choice is a pure function of the recorded events: the earliest recorded train rollout of the
skill on the item. `replay --verify` re-derives it for every review rollout, so a forged pointer
(another skill, another item, a changed result) and a review rollout paid for while a recorded
one was due are both refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from skillopt.machine.core.events import RolloutRef, RolloutScored, Tokens
from skillopt.machine.core.state import ItemScore, TrainerState, train_key

# The phase that needs a rollout -> the phases whose recorded rollouts it reuses.
SOURCES: dict[str, tuple[str, ...]] = {"review": ("train",)}


@dataclass(frozen=True)
class Source:
    ref: RolloutRef
    score: ItemScore


def source(state: TrainerState, phase: str, skill_hash: str, item_id: str) -> Source | None:
    """The recorded rollout a `phase` rollout of `skill_hash` on `item_id` reuses (None: roll):
    the earliest recorded train rollout of that skill on that item."""
    if phase not in SOURCES or not state.cfg.reuses_rollouts:
        return None
    found: Source | None = None
    for step, progress in state.details.items():  # finished steps, rolled out with their parent
        if progress.parent_hash != skill_hash:
            continue
        for unit, score in state.scored(train_key(step)).items():
            if score.item_id != item_id or (found is not None and found.score.seq < score.seq):
                continue
            batch = int(unit.split("/", 1)[0])  # train units are keyed batch/item
            found = Source(RolloutRef(phase="train", step=step, batch=batch), score)
    return found


def named(ref: RolloutRef | None) -> str:
    return "" if ref is None else f"{ref.phase} step {ref.step}, batch {ref.batch}"


def reused(
    state: TrainerState, phase: str, step: int, skill_hash: str, item_id: str
) -> RolloutScored | None:
    """The rollout.scored that records the reuse (None when no recorded rollout applies)."""
    found = source(state, phase, skill_hash, item_id)
    if found is None:
        return None
    score = found.score
    return RolloutScored(
        phase=phase,  # type: ignore[arg-type]
        step=step,
        skill_hash=skill_hash,
        item_id=item_id,
        hard=score.hard,
        soft=score.soft,
        fail_reason=score.fail_reason,
        task_type=score.task_type,
        trajectory_hash=score.trajectory_hash,
        feedback=dict(score.feedback),
        tokens=Tokens(),
        reuse_of=found.ref,
    )
