"""The epoch boundary's optimizer calls: the slow update (longitudinal guidance in the skill's
protected SLOW_UPDATE block) and the meta skill (the optimizer's own memory)."""

from __future__ import annotations

from skillopt.machine.core import events as ev
from skillopt.machine.core.canonical import sha256_text
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions import review
from skillopt.machine.decisions.skilldoc import slow_update_placeholder, with_slow_update
from skillopt.machine.loop import transitions as tr
from skillopt.machine.optimizer import asks
from skillopt.machine.stages.protocol import Asking, StageGen, Texts, decided


def slow_update(cmd: tr.SlowUpdate, state: TrainerState, text: Texts) -> StageGen:
    parent = state.current_hash
    base = {"epoch": cmd.epoch, "parent_hash": parent}
    if cmd.epoch == 1:  # nothing to compare yet: an empty block the later epochs fill
        placeholder = slow_update_placeholder(text(parent), state.cfg.parity)
        event = ev.SlowUpdateDone(action="placeholder", skill_hash=sha256_text(placeholder), **base)
        return decided(event, [placeholder])
    plan = state.reviews[cmd.epoch]
    pairs = review.pairs(state, plan)
    a = asks.slow_update(state, plan, pairs, text)
    answer = yield Asking(a, 0, f"epoch{cmd.epoch}", "")
    calls = {"pairs": pairs, "call": answer.call, "reask": answer.reask}
    if answer.value is None:
        return decided(
            ev.SlowUpdateDone(
                action="failed", skill_hash=parent, error=answer.error, **base, **calls
            )
        )
    reasoning, content = answer.value
    if not content:
        return decided(
            ev.SlowUpdateDone(
                action="no_content", skill_hash=parent, reasoning=reasoning, **base, **calls
            )
        )
    skill = with_slow_update(text(parent), content, state.cfg.parity)
    skill_hash = sha256_text(skill)
    gated = state.cfg.optimizer.slow_update_gate_with_selection and skill_hash != parent
    event = ev.SlowUpdateDone(
        action="gate" if gated else "force_accept",
        skill_hash=skill_hash,
        content_hash=sha256_text(content),
        reasoning=reasoning,
        **base,
        **calls,
    )
    return decided(event, [content, skill])


def meta_skill(cmd: tr.MetaSkill, state: TrainerState, text: Texts) -> StageGen:
    plan = state.reviews[cmd.epoch]
    pairs = review.pairs(state, plan)
    answer = yield Asking(asks.meta_skill(state, plan, pairs, text), 0, f"epoch{cmd.epoch}", "")
    base = {"epoch": cmd.epoch, "pairs": pairs, "call": answer.call, "reask": answer.reask}
    if answer.value is None:
        return decided(ev.MetaSkillDone(action="failed", error=answer.error, **base))
    reasoning, content = answer.value
    if not content:
        return decided(ev.MetaSkillDone(action="no_content", reasoning=reasoning, **base))
    event = ev.MetaSkillDone(
        action="write", content_hash=sha256_text(content), reasoning=reasoning, **base
    )
    return decided(event, [content])
