"""Skill history: every version a run produced, and the REF syntax that names one.

REF is `initial`, `best`, `current` (or `final`), `step:N` (the skill current after step N,
as the reference's skills/skill_vNNNN.md), `candidate:N` (the candidate built at step N),
or a prefix of a skill hash (at least 4 hex digits).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from skillopt.machine.core.state import TrainerState

_STEP = re.compile(r"^(step|candidate):(\d+)$")
_HEX = re.compile(r"^[0-9a-f]{4,64}$")


class RefError(ValueError):
    """A REF that names no skill, or more than one."""


@dataclass(frozen=True)
class SkillVersion:
    hash: str
    step: int
    parent: str | None
    origin: str  # "initial", "candidate", "appendix" or "slow_update"
    fate: str  # initial | accept_new_best | accept | reject | force_accept | skip_nothing_applied | pending
    score: float | None  # selection gate score, when evaluated


def versions(state: TrainerState) -> list[SkillVersion]:
    """The initial skill, then every candidate built, in step order."""
    base = state.baseline.gate_score if state.baseline else None
    out = [SkillVersion(state.initial_hash, 0, None, "initial", "initial", base)]
    steps = dict(state.details)
    if state.progress is not None:
        steps[state.progress.step] = state.progress
    for step in sorted(steps):
        p = steps[step]
        if p.candidate is None:
            continue
        cand = p.candidate.candidate_hash
        if p.decided is not None:
            fate = p.decided.action
        elif p.skipped is not None:
            fate = f"skip_{p.skipped.reason}"
        else:
            fate = "pending"
        cached = state.selection_cache.get(cand)
        out.append(
            SkillVersion(
                cand, step, p.parent_hash, "candidate", fate, cached.gate_score if cached else None
            )
        )
    out += _memory_versions(state, steps)
    return sorted(out, key=lambda v: (v.step, _ORDER[v.origin]))


_ORDER = {"initial": 0, "candidate": 1, "appendix": 2, "slow_update": 3}


def _memory_versions(state: TrainerState, steps: dict) -> list[SkillVersion]:  # type: ignore[type-arg]
    """Skills written by an appendix flush or an epoch-end slow update (not step candidates)."""
    out = []
    for step, p in steps.items():
        a = p.appendix
        if a is None or a.skill_hash == a.parent_hash:
            continue
        g = p.appendix_gate
        fate = "appendix:" + (g.action if g else "pending" if a.gated else "written")
        out.append(
            SkillVersion(a.skill_hash, step, a.parent_hash, "appendix", fate, g and g.gate_score)
        )
    per_epoch = state.dataset.steps_per_epoch if state.dataset else 0
    for epoch, su in state.slow_updates.items():
        if su.skill_hash == su.parent_hash:
            continue
        g = state.slow_gates.get(epoch)
        action = g.action if g else ("pending" if su.action == "gate" else su.action)
        out.append(
            SkillVersion(
                su.skill_hash,
                epoch * per_epoch,
                su.parent_hash,
                "slow_update",
                f"slow_update:{action}",
                g.gate_score if g else None,
            )
        )
    return out


def current_after(state: TrainerState, step: int) -> str:
    if step == 0:
        return state.initial_hash
    for record in state.records:
        if record.step == step:
            return record.current_hash
    raise RefError(f"step:{step}: the run has completed {state.steps_completed} step(s)")


def resolve(state: TrainerState, ref: str) -> str:
    """The full hash of the skill REF names, or RefError saying why not."""
    ref = ref.strip()
    named = {
        "initial": state.initial_hash,
        "best": state.best_hash,
        "current": state.current_hash,
        "final": state.current_hash,
    }
    if ref in named:
        return named[ref]
    if m := _STEP.match(ref):
        kind, step = m.group(1), int(m.group(2))
        if kind == "step":
            return current_after(state, step)
        p = state.details.get(step) or (
            state.progress if state.progress and state.progress.step == step else None
        )
        if p is None or p.candidate is None:
            raise RefError(f"candidate:{step}: step {step} built no candidate")
        return p.candidate.candidate_hash
    if _HEX.match(ref.lower()):
        known = dict.fromkeys(v.hash for v in versions(state))
        matches = [h for h in known if h.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise RefError(f"{ref}: ambiguous, matches {', '.join(h[:12] for h in matches)}")
        raise RefError(f"{ref}: no skill of this run has a hash starting so")
    raise RefError(
        f"{ref!r}: not a skill REF (initial, best, current, final, step:N, candidate:N, "
        "or a hash prefix of 4+ hex digits)"
    )


def unified_diff(a: str, b: str, a_label: str, b_label: str) -> str:
    lines = difflib.unified_diff(
        a.splitlines(keepends=True), b.splitlines(keepends=True), a_label, b_label
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
