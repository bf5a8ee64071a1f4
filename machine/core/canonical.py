"""Canonical JSON and content hashes: the one way bytes are derived from values."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: equal values give equal text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_hash(
    run_id: str, seq: int, type_: str, version: int, payload: Any, prev_hash: str
) -> str:
    """The hash chain link of one event (recorded_at is wall-clock and deliberately left out)."""
    return sha256_text(
        canonical_json(
            {
                "run_id": run_id,
                "seq": seq,
                "type": type_,
                "version": version,
                "payload": payload,
                "prev_hash": prev_hash,
            }
        )
    )


def derive_seed(run_seed: int, epoch: int, step: int, purpose: str) -> int:
    """A seed for one random draw, derived from the run seed; the draw's outcome is recorded."""
    digest = sha256_text(canonical_json([run_seed, epoch, step, purpose]))
    return int(digest[:16], 16)


def short(hash_: str | None, n: int = 12) -> str:
    return (hash_ or "")[:n]
