"""Layer 2 of `replay --verify`: run the event's own stage (machine/stages/) on the state
before it, answering its optimizer calls with the replies the ledger recorded, and compare
the event it returns with the recorded one. The rules live in the stages; this module only
drives them and names the first difference."""

from __future__ import annotations

import json
from typing import Any

from skillopt.machine.core import events as ev
from skillopt.machine.core.canonical import sha256_text
from skillopt.machine.core.state import TrainerState
from skillopt.machine.loop import transitions as tr
from skillopt.machine.optimizer.prompts import reask_message
from skillopt.machine.optimizer.replies import ReplyError
from skillopt.machine.stages.protocol import Answer, Asking, drive
from skillopt.machine.stages.registry import DERIVED
from skillopt.machine.verify.common import Mismatch, Texts, blob, same

# What a difference in a field is called (default: the field's name, spaced).
_ANY = "*"
LABELS: dict[str, dict[str, str]] = {
    "epoch.planned": {"steps": "epoch batches", "seed": "epoch seed"},
    "reflection.planned": {"seed": "reflection seed"},
    "reflection.proposed": {_ANY: "parsed reply"},
    "patches.merged": {"nodes": "merge node", _ANY: "merged patch"},
    "baseline.evaluated": {f: "n, hard, soft" for f in ("n", "hard", "soft")},
    "candidate.evaluated": {f: "n, hard, soft" for f in ("n", "hard", "soft")},
    "gate.decided": {
        **{f: "gate inputs" for f in ("candidate_hash", "candidate_score", "current_score")},
        **{f: "gate inputs" for f in ("best_score",)},
        **{f: "gate verdict" for f in ("action", "rule", "paired")},
    },
    "update.gated": {
        **{f: "gate inputs" for f in ("current_score", "best_score")},
        **{f: "gate verdict" for f in ("action", "rule", "paired")},
        **{f: "n, hard, soft" for f in ("n", "hard", "soft")},
    },
    "step.completed": {_ANY: "step.completed"},
    "epoch.completed": {_ANY: "epoch end"},
    "final.evaluated": {
        **{f: "promotion" for f in ("promoted", "best_score_before")},
        _ANY: "final {split}",
    },
    "step.skipped": {"reason": "skip reason"},
    "run.completed": {_ANY: "run summary"},
}
ASKED = {
    "reflect": "reflection",
    "merge": "merge node",
    "rank": "ranking",
    "budget": "budget decision",
    "slow_update": "slow update",
    "meta_skill": "meta skill",
}


def _first_difference(recorded: Any, derived: Any, path: str) -> tuple[str, Any, Any] | None:
    if isinstance(recorded, dict) and isinstance(derived, dict):
        for key in [*recorded, *(k for k in derived if k not in recorded)]:
            found = _first_difference(recorded.get(key), derived.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(recorded, list) and isinstance(derived, list) and len(recorded) == len(derived):
        for k, (r, d) in enumerate(zip(recorded, derived, strict=True)):
            found = _first_difference(r, d, f"{path}[{k}]")
            if found:
                return found
        return None
    return None if recorded == derived else (path, recorded, derived)


def compare(recorded: ev.Event, derived: ev.Event) -> None:
    r, d = recorded.payload(), derived.payload()
    found = _first_difference(r, d, "")
    if found is None:
        return
    path, was, now = found
    field = path[1:].split(".")[0].split("[")[0]
    labels = LABELS.get(recorded.TYPE, {})
    label = labels.get(field, labels.get(_ANY, field.replace("_", " "))).format(**r)
    raise Mismatch(f"{label} ({path[1:]}): recorded {was!r}, re-derived {now!r}")


def _slot(event: ev.Event, slot: str) -> tuple[ev.CallRecord | None, ev.CallRecord | None]:
    """The recorded call (and re-ask) that answered an ask, where the event keeps it."""
    if slot.startswith("nodes/"):
        node_id = slot.removeprefix("nodes/")
        holder = next((n for n in getattr(event, "nodes", []) if n.id == node_id), None)
    else:
        holder = getattr(event, slot, None) if slot else event
    return getattr(holder, "call", None), getattr(holder, "reask", None)


def _prompt(
    s: TrainerState,
    texts: Texts,
    call: ev.CallRecord,
    user: str,
    what: str,
    purpose: str,
    history: list[list[str]],
) -> None:  # noqa: E501
    """The recorded prompt is the one these recorded inputs give (its system part is the
    template of the skillopt that wrote it, which the ledger does not hold)."""
    try:
        prompt = json.loads(blob(texts, call.prompt_hash, f"{what} prompt"))
    except json.JSONDecodeError:
        raise Mismatch(f"{what} prompt is not the JSON skillopt records") from None
    same(
        f"{what} prompt",
        (prompt.get("purpose"), prompt.get("model"), prompt.get("history", []), prompt.get("user")),
        (purpose, s.cfg.models.optimizer.model, history, user),
    )


def recorded_answer(s: TrainerState, texts: Texts, asking: Asking, event: ev.Event) -> Answer[Any]:
    """Answer an ask as the recorded calls did: the same prompt, the reply parsed again, and a
    re-ask exactly when the first reply was unusable."""
    a = asking.ask
    what = ASKED.get(a.purpose, a.purpose)
    if asking.slot.startswith("nodes/"):
        what = f"{what} {asking.unit}"
    call, reask = _slot(event, asking.slot)
    if call is None:
        raise Mismatch(f"{what}: the stage asks the optimizer, but no call is recorded")
    _prompt(s, texts, call, a.user, what, a.purpose, [])
    first = blob(texts, call.response_hash, f"{what} reply")
    try:
        value = a.parse(first)
    except ReplyError as exc:
        if reask is None:
            raise Mismatch(f"{what}: an unusable reply was not re-asked") from None
        history = [["user", a.user], ["assistant", first]]
        _prompt(s, texts, reask, reask_message(str(exc)), f"{what} re-ask", a.purpose, history)
        try:
            again = a.parse(blob(texts, reask.response_hash, f"{what} re-ask reply"))
            return Answer(again, "", call, reask)
        except ReplyError as second:
            return Answer(None, f"{exc}; after a re-ask: {second}", call, reask)
    if reask is not None:
        raise Mismatch(f"{what}: a usable reply was re-asked")
    return Answer(value, "", call, None)


def check_derived(cmd: tr.Command | None, s: TrainerState, e: ev.Event, texts: Texts) -> None:
    def read(hash_: str) -> str:
        return blob(texts, hash_, "stored text")

    stage = DERIVED[type(e)](cmd, s, e, read)
    decision = drive(stage, lambda asking: recorded_answer(s, texts, asking, e))
    compare(e, decision.event)
    for text in decision.texts:
        if texts.get(sha256_text(text)) != text:
            raise Mismatch(f"a text the stage made is not stored: blob {sha256_text(text)[:12]}")
