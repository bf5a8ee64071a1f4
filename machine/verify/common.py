"""What every verify check shares: the mismatch, its message, and reading a recorded text."""

from __future__ import annotations

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
