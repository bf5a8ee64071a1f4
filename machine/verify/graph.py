"""Layer 1 of `replay --verify`: each event is one the transition table allows at that point
(right stage, step, skill, item). Which events a stage may emit is declared once, with the
stage, in machine/loop/transitions.py (STAGES)."""

from __future__ import annotations

from skillopt.machine.core import events as ev
from skillopt.machine.core.state import TrainerState, unit_key
from skillopt.machine.decisions import gate as gate_rules
from skillopt.machine.decisions.spending import exhausted, limits, spent
from skillopt.machine.loop import transitions as tr
from skillopt.machine.verify.common import Mismatch, same

_EVAL_PHASE = {
    tr.EvaluateBaseline: "selection",
    tr.EvaluateCandidate: "selection",
    tr.EvaluateReference: "selection",
    tr.FinalSelection: "selection",
    tr.FinalTest: "test",
    tr.GateUpdate: "selection",
}


def conforms(state: TrainerState, e: ev.Event) -> tr.Command | None:
    """Raise Mismatch unless `e` is an event the stage graph allows after `state`; return the
    command it belongs to (None for run.created and settings.changed)."""
    if isinstance(e, ev.RunCreated) or state.config is None:
        if state.seq != 0 or not isinstance(e, ev.RunCreated):
            raise Mismatch("a run starts with run.created, once")
        return None
    if isinstance(e, ev.SettingsChanged):
        if state.fork_seq is None or state.seq != state.fork_seq:
            raise Mismatch("settings change only in a fork, right after its copied prefix")
        return None
    cmd = tr.next_command(state)
    if cmd is None:
        raise Mismatch(f"{e.TYPE} after run.completed")
    if isinstance(e, ev.StageFailed):
        same("failed stage", (e.stage, e.step), (cmd.stage, int(getattr(cmd, "step", 0))))
        return cmd
    if isinstance(e, ev.BudgetSet):
        return cmd
    if isinstance(e, ev.BudgetExhausted):
        why = exhausted(state)
        if why is None:
            raise Mismatch("budget.exhausted while the budget is not spent")
        cost, tokens = spent(state)
        same(
            "budget stop",
            (e.stage, e.spent_usd, e.spent_tokens, (e.max_usd, e.max_tokens)),
            (cmd.stage, cost, tokens, limits(state)),
        )
        return cmd
    if not isinstance(e, tr.STAGES[type(cmd)].emits):
        raise Mismatch(f"{e.TYPE} where the stage graph expects stage {cmd.stage}")
    if hasattr(cmd, "step") and hasattr(e, "step") and not isinstance(e, ev.RolloutScored):
        same("step", e.step, cmd.step)  # type: ignore[attr-defined]
    if isinstance(e, ev.RolloutScored):
        _rollout_conforms(state, cmd, e)
        return cmd
    pending = getattr(cmd, "pending", ())
    if pending and not isinstance(e, ev.ReflectionProposed):
        raise Mismatch(f"{e.TYPE} while {len(pending)} unit(s) of stage {cmd.stage} are unscored")
    reflected = isinstance(cmd, tr.Reflect) and isinstance(e, ev.ReflectionProposed)
    if reflected and e.minibatch_id not in cmd.pending:  # type: ignore[attr-defined]
        raise Mismatch(f"minibatch {e.minibatch_id} is not pending")  # type: ignore[attr-defined]
    return cmd


def _rollout_conforms(state: TrainerState, cmd: tr.Command, e: ev.RolloutScored) -> None:
    if isinstance(cmd, tr.RolloutTrain):
        assert state.progress is not None
        same(
            "rollout",
            (e.phase, e.step, e.skill_hash),
            ("train", cmd.step, state.progress.parent_hash),
        )
        if (e.batch, e.item_id) not in cmd.pending:
            raise Mismatch(f"train item {unit_key(e.batch, e.item_id)} is not pending")
        return
    if isinstance(cmd, tr.ReviewRollout):
        same("rollout", (e.phase, e.step, e.batch), ("review", 0, 0))
        if (e.skill_hash, e.item_id) not in cmd.pending:
            raise Mismatch(f"review item {e.item_id} of {e.skill_hash[:12]} is not pending")
        return
    phase = _EVAL_PHASE[type(cmd)]
    step = cmd.step if isinstance(cmd, tr.EvaluateCandidate | tr.EvaluateReference) else 0
    same(
        "rollout",
        (e.phase, e.skill_hash, e.step, e.batch),
        (phase, cmd.skill_hash, step, 0),  # type: ignore[attr-defined]
    )
    if e.item_id not in cmd.pending:  # type: ignore[attr-defined]
        raise Mismatch(f"{phase} item {e.item_id} is not pending")
    gated = isinstance(cmd, tr.EvaluateCandidate | tr.GateUpdate)
    if gated and gate_rules.active(state) and e.item_id != cmd.pending[0]:
        # early reject decides on a prefix of the evaluation order: it must be that prefix
        raise Mismatch(f"{phase} item {e.item_id} out of order ({cmd.pending[0]} is next)")
