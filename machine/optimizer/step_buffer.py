"""The step buffer: what earlier steps of this epoch saw and tried, for the optimizer's prompts.

Derived from events (never stored), so a resumed run shows the optimizer exactly what an
uninterrupted one would. From config_version 4 a rejected step shows its verdict and edits and
the score it failed to beat, never the candidate's own selection score: with early reject that
score covers only the items scored before the stop, and a prompt reading it would make a run
with early reject take another path than a full-pass run. Failure patterns are grouped by the fail_reason prefix, and each group
is described by the reflection's failure_summary entry *of the same group* (matched by label,
not by position, unlike the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

from skillopt.machine.core.events import EarlyStop
from skillopt.machine.core.state import StepProgress, TrainerState
from skillopt.machine.decisions.scoring import is_failure


@dataclass(frozen=True)
class Pattern:
    group: str
    description: str
    count: int
    task_ids: tuple[str, ...]


@dataclass(frozen=True)
class BufferEntry:
    step: int
    action: str
    n_total: int
    n_fail: int
    patterns: tuple[Pattern, ...]
    score_before: float | None = None
    score_after: float | None = None  # None on a reject from config_version 4: not shown
    rejected: tuple[str, ...] = ()
    stopped_early: bool = False  # score_after is early reject's bound, not a measured score


def fail_group(reason: str) -> str:
    return (reason.split(":", 1)[0] if ":" in reason else reason).strip() or "unknown"


def _label(text: object) -> str:
    return " ".join(str(text).lower().replace("_", " ").replace("-", " ").split())


def _descriptions(p: StepProgress) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if p.reflection is None:
        return out
    for mb in p.reflection.minibatches:
        prop = p.proposals.get(mb.id)
        for row in prop.failure_summary if prop else []:
            desc = str(row.get("description", "")).strip()
            if desc and desc not in out.setdefault(_label(row.get("failure_type", "")), []):
                out[_label(row.get("failure_type", ""))].append(desc)
    return out


def _rejected(p: StepProgress) -> tuple[str, ...]:
    if p.selected is None:
        if p.merged is not None and p.merged.skill_candidates:
            return tuple(f"[rewrite] {c.title}" for c in p.merged.skill_candidates[:1])
        return ()
    rows = [e.summary(160) for e in p.selected.edits]
    rows += [s.summary(160) for s in p.selected.suggestions]
    return tuple(rows)


def entry(state: TrainerState, p: StepProgress, action: str) -> BufferEntry:
    items = state.step_items(p.step)
    groups: dict[str, list[str]] = {}
    for item_id, score in items.items():
        if is_failure(score.hard):
            groups.setdefault(fail_group(score.fail_reason), []).append(item_id)
    described = _descriptions(p)
    patterns = tuple(
        Pattern(g, (described.get(_label(g)) or [""])[0], len(ids), tuple(ids))
        for g, ids in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    )
    n_fail = sum(len(ids) for ids in groups.values())
    d = p.decided
    if d is not None and d.action == "reject" and state.cfg.neutral_gates:
        return BufferEntry(
            p.step, action, len(items), n_fail, patterns, d.current_score, None, _rejected(p)
        )
    if d is not None and d.action == "reject":
        stop = p.evaluated.early_stop if p.evaluated is not None else None
        return BufferEntry(
            p.step,
            action,
            len(items),
            n_fail,
            patterns,
            d.current_score,
            d.candidate_score if stop is None else _reachable(stop, d.current_score),
            _rejected(p),
            stop is not None,
        )
    return BufferEntry(p.step, action, len(items), n_fail, patterns)


def _reachable(stop: EarlyStop, current: float) -> float:
    """The best score an early-rejected candidate could have reached (the paired bound is on the
    mean per-item gain over the current skill)."""
    return stop.bound if stop.rule == "strict" else current + stop.bound


def step_buffer(state: TrainerState, epoch: int, before: int) -> list[BufferEntry]:
    """Entries of the finished steps of `epoch` before step `before` (reset each epoch)."""
    actions = {r.step: r.action for r in state.records}
    return [
        entry(state, p, actions.get(step, ""))
        for step, p in sorted(state.details.items())
        if p.epoch == epoch and step < before
    ]


def render(entries: list[BufferEntry]) -> str:
    if not entries:
        return ""
    lines = [
        "Earlier steps of this epoch: avoid repeating edits that were rejected and prioritise "
        "failure patterns that remain unsolved."
    ]
    for e in entries:
        lines.append(f"### Step {e.step}: {e.action} ({e.n_fail}/{e.n_total} failed)")
        for pat in e.patterns:
            about = f": {pat.description}" if pat.description else ""
            ids = ", ".join(pat.task_ids)
            lines.append(f"- {pat.group}{about} (x{pat.count}; tasks {ids})")
        if e.rejected and e.score_after is None:
            lines.append(f"  Rejected by the gate (the current skill scores {e.score_before:.4f}):")
        elif e.rejected:
            after = f"at most {e.score_after:.4f}" if e.stopped_early else f"{e.score_after:.4f}"
            lines.append(f"  Rejected (score {e.score_before:.4f} -> {after}):")
            lines.extend(f"  {i}. {row}" for i, row in enumerate(e.rejected, 1))
    return "\n".join(lines)


def buffer_text(state: TrainerState, step: int) -> str:
    """The rendered buffer for a prompt of `step` ("" when the run does not use it)."""
    if not state.cfg.optimizer.use_step_buffer:
        return ""
    return render(step_buffer(state, state.epoch_of(step), step))
