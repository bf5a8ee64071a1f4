"""What an experiment tracker (MLflow) is given of a run: the resolved config as flat params,
per-step metrics, the final test metrics. Pure functions of the report data (views.py) and of
the events, so an export and a run logging as it goes give the same numbers, and both equal
the report's; the shell (commands/tracking.py) sends them.

Names use `/` so that trackers group them (selection/current, test/best/hard)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from skillopt.machine.core.events import Event
from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.spending import spent
from skillopt.machine.loop.reducer import apply

# MLflow's limits: a param value of at most 6000 characters, names of at most 250 made of
# letters, digits and `_ - . / space`.
MAX_VALUE, MAX_NAME = 6000, 250
ACCEPTS = ("accept", "accept_new_best", "force_accept")

# (metric, the step record's key): a step's numbers as the report's steps table shows them.
STEP_KEYS = (
    ("selection/candidate", "candidate_gate_score"),
    ("selection/candidate_hard", "selection_hard"),
    ("selection/candidate_soft", "selection_soft"),
    ("selection/current", "current_score"),
    ("selection/best", "best_score"),
    ("rollout/hard", "rollout_hard"),
    ("edits/merged", "n_edits_merged"),
    ("edits/selected", "n_edits_selected"),
    ("edits/applied", "edits_applied"),
)


@dataclass(frozen=True)
class Spend:
    """Tokens and dollars spent by the end of a step (dollars None without prices), and the
    seq of the event that ended it (its recorded time is the metric's timestamp)."""

    tokens: int
    usd: float | None
    seq: int


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int


def name(text: str) -> str:
    """A param or metric name the tracker accepts: other characters become `_`."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", text)[:MAX_NAME]


def flat_params(config: Mapping[str, Any]) -> dict[str, str]:
    """The resolved config as `section.key` -> text: a string as it is, anything else
    (numbers, booleans, null, lists) as JSON. A value past the tracker's limit is cut with `…`."""
    out: dict[str, str] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, Mapping) and value:
            for key, inner in value.items():
                walk(inner, f"{prefix}{key}.")
            return
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        out[name(prefix.rstrip("."))] = (
            text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"
        )

    walk(config, "")
    return out


def spend_per_step(
    events: Iterable[Event], state: TrainerState | None = None
) -> tuple[TrainerState, dict[int, Spend]]:
    """Fold `events` (from `state`, default the empty one) and note what had been spent when
    each step ended: step 0 when the baseline was evaluated, step N when step N's record was
    written. The folded state comes back so that a caller can go on from it."""
    state = state if state is not None else TrainerState()
    out: dict[int, Spend] = {}
    for event in events:
        had_baseline, steps = state.baseline is not None, len(state.records)
        state = apply(state, event)
        ended = [0] if state.baseline is not None and not had_baseline else []
        ended += [r.step for r in state.records[steps:]]
        if ended:
            usd, tokens = spent(state)
            for step in ended:
                out[step] = Spend(tokens, usd, state.seq)
    return state, out


def step_metrics(report: Mapping[str, Any], spend: Mapping[int, Spend]) -> list[Metric]:
    """Per step (0 = the initial skill's baseline): the selection scores of the candidate and
    of the current and best skills, the rollout score, edits merged/selected/applied, the
    verdict (gate/accepted 1 or 0; none for a skipped step), tokens and dollars spent so far.
    A number the step does not have (a skipped step's candidate) is left out, not zero."""
    out: list[Metric] = []
    base = report["baseline"]
    if base is not None:
        out += [
            Metric("selection/current", base["gate_score"], 0),
            Metric("selection/best", base["gate_score"], 0),
        ]
    for s in report["steps"]:
        step = s["step"]
        out += [Metric(k, float(s[f]), step) for k, f in STEP_KEYS if s[f] is not None]
        if s["action"] in ACCEPTS or s["action"] == "reject":
            out.append(Metric("gate/accepted", 1.0 if s["action"] in ACCEPTS else 0.0, step))
    for step, sp in sorted(spend.items()):
        out.append(Metric("spend/tokens", float(sp.tokens), step))
        if sp.usd is not None:
            out.append(Metric("spend/usd", sp.usd, step))
    return out


def final_metrics(report: Mapping[str, Any], usd: float | None, tokens: int) -> dict[str, float]:
    """The outcome: best and final selection scores, the test split's scores of each skill
    evaluated there (initial, best, final; hard and soft, hard per task type), and the whole
    run's tokens and dollars."""
    fin = report["final"]
    out: dict[str, float] = {"final/tokens": float(tokens)}
    if usd is not None:
        out["final/usd"] = usd
    if report["baseline"] is not None:
        out["final/best_selection"] = fin["best_score"]
        out["final/final_selection"] = fin["final_score"]
    for role, t in fin["test"].items():
        for kind in ("hard", "soft"):
            if t.get(kind) is not None:
                out[name(f"test/{role}/{kind}")] = t[kind]
        for bucket, b in t["buckets"].items():
            if bucket != "overall":
                out[name(f"test/{role}/by_type/{bucket}")] = b["hard"]
    return out
