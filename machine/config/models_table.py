"""Each known model's prompt-cache rules: the shortest prefix its provider caches and the
prices of cache writes and reads (US dollars per million tokens), beside the list prices in
prices.py. A model matches the longest prefix in the table, as there.

Sources (checked 2026-12; a config's `models.<role>.cache` always wins, and `init` records
what it took from here, so a run's report never changes when this table does):

- Anthropic, "Prompt caching" (docs.anthropic.com/en/docs/build-with-claude/prompt-caching):
  explicit `cache_control` breakpoints, at most 4 per request; the minimum cacheable prompt
  length is 4,096 tokens for Claude Opus 4.5/4.6 and Haiku 4.5, 2,048 for Haiku 3.5/3, and
  1,024 for Sonnet 4.5/4, Opus 4.1/4 and Sonnet 3.7 (shorter prefixes are processed without
  caching and without an error). A 5-minute cache write costs 1.25x the base input price, a
  read 0.1x.
- OpenAI, "Prompt caching" (platform.openai.com/docs/guides/prompt-caching): automatic for
  prompts of 1,024 tokens or more, hits in 128-token increments; no fee for writes, reads at
  the model's cached-input price (prices.py); `prompt_cache_key` steers routing.
"""

from __future__ import annotations

TABLE_DATE = "2026-12"

ANTHROPIC_WRITE = 1.25  # 5-minute cache writes, times the input price
OPENAI_MIN_PREFIX = 1024

# model prefix: minimum cacheable prefix in tokens (Anthropic)
ANTHROPIC_MIN_PREFIX: dict[str, int] = {
    "claude-opus-4-6": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-1": 1024,
    "claude-opus-4": 1024,
    "claude-sonnet-4-6": 1024,
    "claude-sonnet-4-5": 1024,
    "claude-sonnet-4": 1024,
    "claude-3-7-sonnet": 1024,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
OPENAI_PREFIXES = ("gpt-5", "gpt-4.1", "gpt-4o", "o4-mini", "o3", "o1")


def _longest(model: str, prefixes: object) -> str | None:
    name = model.lower()
    found = [p for p in prefixes if name.startswith(p)]  # type: ignore[attr-defined]
    return max(found, key=len) if found else None


def table_cache(model: str, input_price: float | None) -> dict[str, float | int] | None:
    """The model's cache settings, or None for a model the table does not know (a local
    server, an offline model): `min_prefix_tokens`, and for Anthropic `write_price` at 1.25x
    `input_price` (the role's own input price, or the table's when it gives none). Reads are
    priced by `prices.cached_input` (the table's is 0.1x input), so no `read_price`."""
    if (key := _longest(model, ANTHROPIC_MIN_PREFIX)) is not None:
        out: dict[str, float | int] = {"min_prefix_tokens": ANTHROPIC_MIN_PREFIX[key]}
        if input_price is not None:
            out["write_price"] = round(input_price * ANTHROPIC_WRITE, 6)
        return out
    if _longest(model, OPENAI_PREFIXES) is not None:
        return {"min_prefix_tokens": OPENAI_MIN_PREFIX}  # writes: no premium, the input price
    return None
