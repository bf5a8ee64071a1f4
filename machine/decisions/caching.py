"""Prompt caching: when a role's cacheable prefix is too short for its model to cache it.

A provider caches only prefixes of at least the model's minimum length (the model table,
machine/config/models_table.py, recorded in `models.<role>.cache` at init); a shorter one is
billed in full on every call and the provider says nothing. The cacheable prefix of a role
is what repeats across its calls: for the target the skill (its system prompt), for the
optimizer the tool schema, the template and the current skill. `init`, `estimate` and
`doctor` measure it (characters / 4, as the estimate counts tokens) and warn once per role;
`init`'s warnings are recorded in run.created, which is how the report says it too.
"""

from __future__ import annotations

from collections.abc import Mapping

from skillopt.machine.config.schema import SkilloptConfig


def prefix_warnings(cfg: SkilloptConfig, prefixes: Mapping[str, Mapping[str, int]]) -> list[str]:
    """One line per role whose cacheable prefix (role -> purpose -> estimated tokens) is under
    its model's minimum, naming the tokens missing; [] when the minimum is unknown."""
    lines = []
    for role, by_purpose in prefixes.items():
        settings = getattr(cfg.models, role, None)
        cache = settings.cache if settings is not None else None
        minimum = cache.min_prefix_tokens if cache is not None else None
        if settings is None or not minimum:
            continue
        short = {p: n for p, n in sorted(by_purpose.items()) if n < minimum}
        if not short:
            continue
        floor = f"the {minimum:,} tokens {settings.model} caches at least"
        if role == "target":
            n = min(short.values())
            lines.append(
                f"models.target: the cacheable prefix (the skill, about {n:,} tokens) is "
                f"{minimum - n:,} tokens short of {floor}: no target call is cached"
            )
            continue
        parts = ", ".join(
            f"{p} (about {n:,} tokens, {minimum - n:,} missing)" for p, n in short.items()
        )
        lines.append(
            f"models.{role}: the cacheable prefix (tool schema, template and skill) is under "
            f"{floor} for {parts}: those calls are not cached"
        )
    return lines
