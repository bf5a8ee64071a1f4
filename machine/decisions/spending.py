"""Spending and budgets: tokens and cost so far, as pure functions of the state."""

from __future__ import annotations

from skillopt.machine.config.schema import CacheSettings, Prices
from skillopt.machine.core.state import TrainerState


def stage_cost(
    state: TrainerState, stage: str, tokens_in: int, tokens_out: int, cached: int = 0
) -> float | None:
    """Cost of a stage's tokens at its role's prices (role_of); cached input at the cached
    price (the input price when none is set), the stage's cache writes at the write price."""
    role = getattr(state.cfg.models, role_of(stage))
    return token_cost(
        role.prices if role is not None else None,
        tokens_in,
        tokens_out,
        cached,
        written=state.cache_written.get(stage, 0),
        cache=role.cache if role is not None else None,
    )


def role_of(stage: str) -> str:
    """Rollouts are the target's, judge calls the judge's, everything else the optimizer's."""
    if stage.startswith("rollout"):
        return "target"
    return "judge" if stage.startswith("judge") else "optimizer"


def cache_prices(prices: Prices, cache: CacheSettings | None) -> tuple[float, float]:
    """(read, write) price per million cached tokens: the role's cache settings, else
    `prices.cached_input` for reads and the input price for writes (no premium)."""
    read = prices.input if prices.cached_input is None else prices.cached_input
    write = prices.input
    if cache is not None:
        read = read if cache.read_price is None else cache.read_price
        write = write if cache.write_price is None else cache.write_price
    return read, write


def token_cost(
    prices: Prices | None,
    tokens_in: int,
    tokens_out: int,
    cached: int,
    digits: int = 6,
    *,
    written: int = 0,
    cache: CacheSettings | None = None,
) -> float | None:
    """One call's (or a stage's) cost at `prices` (per million tokens), rounded to `digits`
    decimals. `tokens_in` counts every input token: `cached` ones read from the prompt cache
    and `written` ones written to it (Anthropic bills a 5-minute write at 1.25x input)."""
    if prices is None:
        return None
    read_price, write_price = cache_prices(prices, cache)
    fresh = max(0, tokens_in - cached - written)
    raw = (
        fresh * prices.input
        + cached * read_price
        + written * write_price
        + tokens_out * prices.output
    )
    return round(raw / 1e6, digits)


def cache_saved(
    prices: Prices | None, cache: CacheSettings | None, cached: int, written: int
) -> float | None:
    """Dollars the prompt cache saved on these tokens against paying them all as fresh input:
    reads save (input - read price), writes cost their premium (write - input price)."""
    if prices is None:
        return None
    read_price, write_price = cache_prices(prices, cache)
    raw = cached * (prices.input - read_price) - written * (write_price - prices.input)
    return round(raw / 1e6, 6)


def spent(state: TrainerState) -> tuple[float | None, int]:
    """(cost so far, or None when a stage with tokens has no prices; tokens so far)."""
    tokens = sum(i + o for _, i, o, _ in state.tokens.values())
    costs = [stage_cost(state, stage, i, o, c) for stage, (_, i, o, c) in state.tokens.items()]
    if any(c is None for c in costs):
        return None, tokens
    return round(sum(c for c in costs if c is not None), 6), tokens


def limits(state: TrainerState) -> tuple[float | None, int | None]:
    b = state.cfg.budget
    usd = state.budget_usd if state.budget_set else b.max_usd
    tok = state.budget_tokens if state.budget_set else b.max_tokens
    return usd, tok


def exhausted(state: TrainerState) -> str | None:
    """Why the next stage must not start, or None."""
    usd, tok = limits(state)
    cost, tokens = spent(state)
    if tok is not None and tokens >= tok:
        return f"spent {tokens} tokens of a budget of {tok}"
    if usd is not None and cost is not None and cost >= usd:
        return f"spent {cost:.4f} of a budget of {usd:.4f}"
    return None


def by_role(state: TrainerState) -> dict[str, dict[str, float | int | None]]:
    """Tokens and cost per role (rollouts are the target's, the rest the optimizer's)."""
    out: dict[str, dict[str, float | int | None]] = {}
    for stage, (calls, tokens_in, tokens_out, cached) in sorted(state.tokens.items()):
        row = out.setdefault(role_of(stage), {"calls": 0, "tokens": 0, "cost": 0.0})
        cost = stage_cost(state, stage, tokens_in, tokens_out, cached)
        row["calls"] = int(row["calls"] or 0) + calls
        row["tokens"] = int(row["tokens"] or 0) + tokens_in + tokens_out
        row["cost"] = (
            None if cost is None or row["cost"] is None else round(float(row["cost"]) + cost, 6)
        )
    return out
