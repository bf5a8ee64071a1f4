"""A built-in table of list prices (US dollars per million tokens) of common Anthropic and
OpenAI models, so that `estimate` and `budget.max_usd` work without hand-entered prices.

A model matches the longest prefix in the table (`claude-sonnet-4-5-20250929` matches
`claude-sonnet-4-5`). Prices change: a config's own `models.<role>.prices` always wins, and
`init` records the prices it took from the table in the run (with a warning naming them), so
a run's report never changes when this table does.
"""

from __future__ import annotations

TABLE_DATE = "2026-12"

# model prefix: (input, output, cached input)
PRICES: dict[str, tuple[float, float, float]] = {
    "claude-opus-4-5": (5.0, 25.0, 0.50),
    "claude-opus-4": (15.0, 75.0, 1.50),
    "claude-sonnet-4-5": (3.0, 15.0, 0.30),
    "claude-sonnet-4": (3.0, 15.0, 0.30),
    "claude-3-7-sonnet": (3.0, 15.0, 0.30),
    "claude-haiku-4-5": (1.0, 5.0, 0.10),
    "claude-3-5-haiku": (0.80, 4.0, 0.08),
    "gpt-5-nano": (0.05, 0.40, 0.005),
    "gpt-5-mini": (0.25, 2.0, 0.025),
    "gpt-5": (1.25, 10.0, 0.125),
    "gpt-4.1-nano": (0.10, 0.40, 0.025),
    "gpt-4.1-mini": (0.40, 1.60, 0.10),
    "gpt-4.1": (2.0, 8.0, 0.50),
    "gpt-4o-mini": (0.15, 0.60, 0.075),
    "gpt-4o": (2.50, 10.0, 1.25),
    "o4-mini": (1.10, 4.40, 0.275),
    "o3-mini": (1.10, 4.40, 0.55),
    "o3": (2.0, 8.0, 0.50),
}


def table_prices(model: str) -> tuple[float, float, float] | None:
    """(input, output, cached input) of the longest table prefix of `model`, or None."""
    matches = [p for p in PRICES if model.lower().startswith(p)]
    return PRICES[max(matches, key=len)] if matches else None


# Model shorthands (`skillopt bench closed-loop --model haiku`): name -> (backend, model, the
# environment variable that holds its API key unless the config names one). The seed bench's
# two models, plus opus; each model is in PRICES, so a bench prices its tasks.
MODEL_SHORTHANDS: dict[str, tuple[str, str, str]] = {
    "haiku": ("anthropic", "claude-haiku-4-5", "ANTHROPIC_API_KEY"),
    "sonnet": ("anthropic", "claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
    "opus": ("anthropic", "claude-opus-4-5", "ANTHROPIC_API_KEY"),
}
# Names that stand for several shorthands, in order (the seed's `--model both`).
SHORTHAND_GROUPS: dict[str, tuple[str, ...]] = {"both": ("haiku", "sonnet")}


def resolve_shorthands(names: list[str]) -> list[str]:
    """The shorthands `names` stand for, groups expanded, each once, in order; ValueError names
    an unknown one."""
    out: list[str] = []
    for name in names:
        key = name.strip().lower()
        if key not in MODEL_SHORTHANDS and key not in SHORTHAND_GROUPS:
            known = ", ".join([*MODEL_SHORTHANDS, *SHORTHAND_GROUPS])
            raise ValueError(f"--model {name}: unknown model shorthand (known: {known})")
        out += [m for m in SHORTHAND_GROUPS.get(key, (key,)) if m not in out]
    return out
