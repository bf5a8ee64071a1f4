"""What every verify check shares: the mismatch, its message, and reading a recorded text."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from skillopt.machine.core.canonical import sha256_text

Texts = Mapping[str, str]


class Mismatch(Exception):
    pass


def same(what: str, recorded: Any, derived: Any) -> None:
    if recorded != derived:
        raise Mismatch(f"{what}: recorded {recorded!r}, re-derived {derived!r}")


def blob(texts: Texts, hash_: str, what: str) -> str:
    text = texts.get(hash_)
    if text is None:
        raise Mismatch(f"{what}: blob {hash_[:12]} is missing")
    if sha256_text(text) != hash_:
        raise Mismatch(f"{what}: blob {hash_[:12]} does not hash to its key")
    return text


def text_keys(payload: Any, field: str = "") -> list[tuple[str, str]]:
    """(field, key) of every text an event payload refers to: by convention, a field named
    `*_hash` holding a sha256 is the key of a stored text (skill, trajectory, prompt, reply,
    program output). `skillopt verify` checks that each is stored. Exception: a bench arm's
    `skill_hash` (bench.started) names its skill context by hash alone (BY_HASH_ONLY)."""
    if isinstance(payload, dict):
        return [pair for k, v in payload.items() for pair in text_keys(v, k)]
    if isinstance(payload, list):
        return [pair for v in payload for pair in text_keys(v, field)]
    if field.endswith("_hash") and isinstance(payload, str) and _SHA256.fullmatch(payload):
        return [(field, payload)]
    return []


_SHA256 = re.compile(r"[0-9a-f]{64}")
# Event type -> `*_hash` fields that name a text the ledger never stored.
BY_HASH_ONLY = {"bench.started": {"skill_hash"}}
