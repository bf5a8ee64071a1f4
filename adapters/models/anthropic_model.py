"""`anthropic`: the Messages API through the official SDK.

Prompt caching is explicit on this API: a `cache_control` breakpoint caches the prefix up to
and including its block (tools, then system, then messages), at most 4 per request, and only
a prefix of the model's minimum length or more. The system prompt (for the target: the skill
document; for the optimizer: its template, after the tool schema) is one block with a
breakpoint. When the request says the first message starts with a stable part
(`ChatRequest.cache_prefix`: the optimizer's current skill), that part becomes a block of its
own with a second breakpoint, so tools + template + skill are one cached prefix and each call
pays only for its own payload; a re-ask (a follow-up turn after the original prompt) reads
the same prefix. A request with a JSON schema is answered through forced tool use, and the
tool input is returned as the reply's JSON text (option `structured_output: false`: no tool,
the prompt alone asks for JSON, for servers that ignore tool choice). Usage records cache
writes and reads.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from skillopt.adapters.models.remote import MalformedResponse, api_key, options_for, with_retries
from skillopt.adapters.protocol import ChatRequest, Completion, RoleSettings

TOOL = "reply"
# The provider's words for why a reply ended, in ours (ChatModel protocol: Completion).
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_use",
    "refusal": "content_filter",
}


EPHEMERAL = {"type": "ephemeral"}  # the 5-minute cache, written at 1.25x the input price


def message_params(request: ChatRequest) -> list[dict[str, Any]]:
    """The messages, the first one split at `cache_prefix` with a breakpoint after its stable
    part (two text blocks the model reads as the one text)."""
    out: list[dict[str, Any]] = []
    for k, m in enumerate(request.messages):
        cut = request.cache_prefix if k == 0 else 0
        if 0 < cut <= len(m.content):
            blocks: list[dict[str, Any]] = [
                {"type": "text", "text": m.content[:cut], "cache_control": EPHEMERAL}
            ]
            if cut < len(m.content):  # the API refuses an empty text block
                blocks.append({"type": "text", "text": m.content[cut:]})
            out.append({"role": m.role, "content": blocks})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


class AnthropicModel:
    def __init__(self, settings: RoleSettings) -> None:
        import anthropic  # imported here: commands that never call a model stay fast

        opts = options_for(settings, {"structured_output": True})
        self.structured = bool(opts["structured_output"])
        self.settings = settings
        self.name = settings.model
        kwargs: dict[str, Any] = {
            "api_key": api_key(settings, required=True),
            "max_retries": 0,
            "timeout": settings.timeout_s,
        }
        if settings.base_url:
            kwargs["base_url"] = settings.base_url
        self.client = anthropic.Anthropic(**kwargs)

    def complete(self, request: ChatRequest) -> Completion:
        s = self.settings
        params: dict[str, Any] = {
            "model": s.model,
            "max_tokens": request.max_tokens,
            "system": [{"type": "text", "text": request.system, "cache_control": EPHEMERAL}],
            "messages": message_params(request),
        }
        if s.temperature is not None:
            params["extra_body"] = {"temperature": s.temperature}
        if request.json_schema is not None and self.structured:
            params["tools"] = [
                {
                    "name": TOOL,
                    "description": "Return the answer as a JSON object.",
                    "input_schema": dict(request.json_schema),
                }
            ]
            params["tool_choice"] = {"type": "tool", "name": TOOL}
        completion, retries = with_retries(
            s, lambda: self._completion(self.client.messages.create(**params))
        )
        return replace(completion, retries=retries)

    @staticmethod
    def _completion(message: Any) -> Completion:
        """Read the answer; anything that is not a Messages response is retried, not trusted."""
        content, usage = getattr(message, "content", None), getattr(message, "usage", None)
        if not isinstance(content, list) or usage is None:
            raise MalformedResponse(f"not a Messages API response: {str(message)[:120]!r}")
        text = ""
        for block in content:
            if block.type == "tool_use":
                text = json.dumps(block.input, ensure_ascii=False)
                break
            if block.type == "text":
                text += block.text
        stop = getattr(message, "stop_reason", None)
        cache_read = usage.cache_read_input_tokens or 0
        cache_write = usage.cache_creation_input_tokens or 0
        return Completion(
            text=text,
            model=message.model,
            # Anthropic counts cached input apart; ours is all input, cached reads included.
            input_tokens=usage.input_tokens + cache_read + cache_write,
            output_tokens=usage.output_tokens,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            finish_reason=FINISH.get(stop, stop or ""),
        )
