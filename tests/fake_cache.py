"""The providers' prompt-caching rules, as the loopback servers (tests/fakes.py) apply them
with `caching=True`, and the usage they report. Tokens are characters / 4 (rounded up).

Anthropic (docs.anthropic.com, "Prompt caching"): caching is explicit. The prompt is read in
the order tools, system, messages; a block with `cache_control` is a breakpoint, at most 4 per
request (a fifth is a 400). The prefix up to and including a breakpoint is cached when it is
at least the model's minimum; a later request whose prefix up to one of its breakpoints is
identical reads the longest such prefix (`cache_read_input_tokens`), writes what lies between
it and its last cacheable breakpoint (`cache_creation_input_tokens`) and pays the rest
(`input_tokens`). A prefix under the minimum is neither read nor written, silently.

OpenAI (platform.openai.com, "Prompt caching"): caching is automatic for prompts of 1,024
tokens or more; a request reads the longest prefix it shares with an earlier request routed to
the same cache, in 128-token steps from 1,024 (`prompt_tokens_details.cached_tokens`, counted
inside `prompt_tokens`). The schema and the messages are the prefix, in that order. Routing
is by `prompt_cache_key` here: requests with different keys never share a cache.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from typing import Any

# model name prefix -> minimum cacheable prefix (Anthropic); anything else: 1,024
ANTHROPIC_MIN = {
    "claude-haiku-4-5": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-3-5-haiku": 2048,
}
MAX_BREAKPOINTS = 4
OPENAI_MIN, OPENAI_STEP = 1024, 128


class TooManyBreakpoints(ValueError):
    pass


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def text_of(content: Any) -> str:
    """A message's text: a string, or its text blocks joined (as the model reads them)."""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if isinstance(b, dict))


@dataclass
class CacheRules:
    # model -> minimum cacheable prefix, over the table above (the test models, m-target...)
    minimum: dict[str, int] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def min_prefix(self, model: str) -> int:
        if model in self.minimum:
            return self.minimum[model]
        found = [p for p in ANTHROPIC_MIN if model.startswith(p)]
        return ANTHROPIC_MIN[max(found, key=len)] if found else 1024

    def anthropic(self, body: dict[str, Any], reply: str) -> dict[str, int]:
        blocks: list[tuple[str, bool]] = []  # (text, breakpoint after it), in cache order
        for tool in body.get("tools") or []:
            blocks.append((json.dumps(tool, sort_keys=True), "cache_control" in tool))
        system = body.get("system") or []
        for b in [{"text": system}] if isinstance(system, str) else system:
            blocks.append(("system:" + b["text"], "cache_control" in b))
        for m in body["messages"]:
            content = m["content"]
            parts = [{"text": content}] if isinstance(content, str) else content
            for k, b in enumerate(parts):
                head = f"{m['role']}:" if k == 0 else ""
                blocks.append((head + b.get("text", ""), "cache_control" in b))
        if sum(bp for _, bp in blocks) > MAX_BREAKPOINTS:
            raise TooManyBreakpoints(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided."
            )
        minimum = self.min_prefix(body["model"])
        digest, total, points = hashlib.sha256(body["model"].encode()), 0, []
        for text, breakpoint in blocks:
            digest.update(b"\x00" + text.encode())
            total += tokens(text)
            if breakpoint and total >= minimum:
                points.append((digest.hexdigest(), total))
        with self.lock:
            read = max((n for h, n in points if h in self.seen), default=0)
            written = max(0, points[-1][1] - read) if points else 0
            self.seen.update(h for h, _ in points)
        return {
            "input_tokens": total - read - written,
            "output_tokens": max(1, tokens(reply)),
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }

    def openai(self, body: dict[str, Any], reply: str) -> dict[str, Any]:
        schema = json.dumps(body.get("response_format"), sort_keys=True)
        text = schema + "".join(f"<{m['role']}>" + text_of(m["content"]) for m in body["messages"])
        total = tokens(text)
        key = f"{body['model']}\x00{body.get('prompt_cache_key')}\x00"
        cuts = range(OPENAI_MIN, total + 1, OPENAI_STEP) if total >= OPENAI_MIN else range(0)
        hashes = [(hashlib.sha256((key + text[: 4 * n]).encode()).hexdigest(), n) for n in cuts]
        with self.lock:
            cached = max((n for h, n in hashes if h in self.seen), default=0)
            self.seen.update(h for h, _ in hashes)
        out = max(1, tokens(reply))
        return {
            "prompt_tokens": total,
            "completion_tokens": out,
            "total_tokens": total + out,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
