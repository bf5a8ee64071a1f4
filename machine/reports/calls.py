"""The report's model calls per stage: tokens and cost, and, for a run whose calls read or
wrote the provider's prompt cache, the cached share of input, the cache writes and the dollars
the cache saved. A run without cache tokens (any offline run) gets exactly the table it always
had, and so does a run recorded before cache writes were counted (config_version <= 3) that
wrote none: its report, cache reads and all, stays byte for byte what it was."""

from __future__ import annotations

from typing import Any

from skillopt.machine.core.state import TrainerState
from skillopt.machine.decisions.spending import cache_saved, role_of, stage_cost


def uses_cache(state: TrainerState) -> bool:
    if state.cache_written:
        return True
    if not any(k for *_, k in state.tokens.values()):
        return False
    return state.cfg.config_version >= 4


def stage_tokens(state: TrainerState) -> dict[str, dict[str, Any]]:
    caching = uses_cache(state)
    out: dict[str, dict[str, Any]] = {}
    for stage, (c, i, o, k) in sorted(state.tokens.items()):
        row: dict[str, Any] = {
            "calls": c,
            "input": i,
            "output": o,
            "cached": k,
            "cost": stage_cost(state, stage, i, o, k),
        }
        if caching:
            role = getattr(state.cfg.models, role_of(stage))
            written = state.cache_written.get(stage, 0)
            prices, cache = (role.prices, role.cache) if role is not None else (None, None)
            row["written"] = written
            row["cached_share"] = round(k / i, 4) if i else 0.0
            row["saved"] = cache_saved(prices, cache, k, written)
        out[stage] = row
    return out


def _usd(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def markdown_lines(tokens: dict[str, dict[str, Any]]) -> list[str]:
    """The "Model calls" section (the cache columns only when the rows carry them)."""
    if not tokens:
        return []
    caching = any("cached_share" in t for t in tokens.values())
    if not caching:
        head = ["| stage | calls | input tokens | output tokens | cost |", "|---|---|---|---|---|"]
        rows = [
            f"| {stage} | {t['calls']} | {t['input']} | {t['output']} | {_usd(t['cost'])} |"
            for stage, t in tokens.items()
        ]
        return ["## Model calls", "", *head, *rows, ""]
    head = [
        "| stage | calls | input tokens | cached share | cache writes | output tokens | cost "
        "| saved by the cache |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = [
        f"| {stage} | {t['calls']} | {t['input']} | {t['cached_share']:.1%} | {t['written']} "
        f"| {t['output']} | {_usd(t['cost'])} | {_usd(t['saved'])} |"
        for stage, t in tokens.items()
    ]
    note = (
        "Cached share: input tokens read from the provider's prompt cache. Cache writes are "
        "billed at the write price; saved: against paying every input token at the input price."
    )
    return ["## Model calls", "", *head, *rows, "", note, ""]
