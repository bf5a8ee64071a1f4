"""Measuring each role's cacheable prefix for the prompt-cache warning (init, estimate,
doctor; the rule is machine/decisions/caching.py): the same templates and schemas the stages
send, with this skill."""

from __future__ import annotations

import json
from typing import Any

from skillopt.commands.context import load_template
from skillopt.machine.config.schema import SkilloptConfig
from skillopt.machine.decisions.caching import prefix_warnings
from skillopt.machine.decisions.estimate import tokens
from skillopt.machine.optimizer.asks import MODE_SUFFIX
from skillopt.machine.optimizer.prompts import SKILL_HEAD
from skillopt.machine.optimizer.replies import (
    MERGE_CANDIDATES_SCHEMA,
    MERGE_SCHEMA,
    MERGE_SUGGESTIONS_SCHEMA,
    RANKING_SCHEMA,
    REFLECTION_SCHEMA,
    reflection_schema,
)

MERGES = {
    "patch": ("merge", MERGE_SCHEMA),
    "rewrite_from_suggestions": ("merge_suggestions", MERGE_SUGGESTIONS_SCHEMA),
    "full_rewrite_minibatch": ("merge_candidates", MERGE_CANDIDATES_SCHEMA),
}


def _asks(cfg: SkilloptConfig) -> dict[str, tuple[tuple[str, ...], Any]]:
    """purpose -> (templates, schema) of the optimizer calls every step makes."""
    o = cfg.optimizer
    mode, aware = o.skill_update_mode, o.use_skill_aware_reflection
    templates = ("reflect_failure", *MODE_SUFFIX.get(mode, ()))
    templates += ("reflect_skill_aware",) if aware else ()
    schema = reflection_schema(mode, aware) if cfg.lean_optimizer_input else REFLECTION_SCHEMA
    merge, merge_schema = MERGES[mode]
    out = {"reflect": (templates, schema), "merge": ((merge,), merge_schema)}
    if mode != "full_rewrite_minibatch":
        out["rank"] = (("rank",), RANKING_SCHEMA)
    return out


def prefix_tokens(cfg: SkilloptConfig, skill: str) -> dict[str, dict[str, int]]:
    """role -> purpose -> estimated tokens of the prefix a provider may cache."""
    section = f"{SKILL_HEAD}{skill.strip()}\n\n"
    optimizer = {
        purpose: tokens(
            len(json.dumps(schema))
            + len("\n\n".join(load_template(t) for t in names))
            + len(section)
        )
        for purpose, (names, schema) in _asks(cfg).items()
    }
    return {"target": {"rollout": tokens(len(skill))}, "optimizer": optimizer}


def cache_warnings(cfg: SkilloptConfig, skill: str) -> list[str]:
    return prefix_warnings(cfg, prefix_tokens(cfg, skill))
