"""`openai` and `azure`: Chat Completions through the official SDK. The same backend covers
any OpenAI-compatible server (vLLM, Ollama, llama.cpp) through base_url, where a key may be
unnecessary. A request with a JSON schema asks for `response_format` json_schema.

Prompt caching is automatic on this API (prompts of 1,024 tokens or more, hits on the longest
previously seen prefix in 128-token steps; the request's static part comes first: schema,
system, then the messages). Requests are routed to a cache by a hash of their first tokens
and `prompt_cache_key`: skillopt sends `ChatRequest.cache_key` (per run, role and skill) so
the concurrent calls of one stage land where their prefix is cached (option
`prompt_cache_key: false` leaves it out, for a server that refuses unknown fields)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from skillopt.adapters.models.remote import MalformedResponse, api_key, options_for, with_retries
from skillopt.adapters.protocol import AdapterError, ChatRequest, Completion, RoleSettings

# The provider's words for why a reply ended, in ours (ChatModel protocol: Completion).
FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_use",
    "content_filter": "content_filter",
}


class OpenAIModel:
    def __init__(self, settings: RoleSettings) -> None:
        import openai  # imported here: commands that never call a model stay fast

        opts = options_for(settings, {"structured_output": True, "prompt_cache_key": True})
        self.structured = bool(opts["structured_output"])
        self.send_cache_key = bool(opts["prompt_cache_key"])
        self.settings = settings
        self.name = settings.model
        common: dict[str, Any] = {"max_retries": 0, "timeout": settings.timeout_s}
        if settings.backend == "azure":
            if not settings.base_url or not settings.api_version:
                raise AdapterError(
                    f"models.{settings.role}: the azure backend needs base_url (the resource "
                    "endpoint) and api_version"
                )
            self.client: Any = openai.AzureOpenAI(
                azure_endpoint=settings.base_url,
                api_version=settings.api_version,
                api_key=api_key(settings, required=True),
                **common,
            )
        else:
            # The official endpoint needs a key; a local OpenAI-compatible server may not.
            # A named variable must be set even for a local server: silence would hide a typo.
            key = api_key(
                settings, required=settings.base_url is None or bool(settings.api_key_env)
            )
            self.client = openai.OpenAI(
                api_key=key or "not-needed", base_url=settings.base_url, **common
            )

    def complete(self, request: ChatRequest) -> Completion:
        s = self.settings
        params: dict[str, Any] = {
            "model": s.model,
            "messages": [{"role": "system", "content": request.system}]
            + [{"role": m.role, "content": m.content} for m in request.messages],
            "max_completion_tokens": request.max_tokens,
        }
        if s.temperature is not None:
            params["temperature"] = s.temperature
        if s.reasoning_effort:
            params["reasoning_effort"] = s.reasoning_effort
        if request.cache_key and self.send_cache_key:
            params["prompt_cache_key"] = request.cache_key
        if request.json_schema is not None and self.structured:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "reply",
                    "schema": dict(request.json_schema),
                    "strict": False,
                },
            }
        completion, retries = with_retries(
            s, lambda: self._completion(self.client.chat.completions.create(**params), s.model)
        )
        return replace(completion, retries=retries)

    @staticmethod
    def _completion(response: Any, model: str) -> Completion:
        """Read the answer; anything that is not a chat completion is retried, not trusted."""
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            raise MalformedResponse(f"not a chat completion: {str(response)[:120]!r}")
        usage = getattr(response, "usage", None)
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        return Completion(
            text=choices[0].message.content or "",
            model=getattr(response, "model", None) or model,
            input_tokens=usage.prompt_tokens if usage else 0,  # cached tokens included
            output_tokens=usage.completion_tokens if usage else 0,
            cache_read_tokens=(getattr(details, "cached_tokens", 0) or 0) if details else 0,
            finish_reason=FINISH.get(choices[0].finish_reason, choices[0].finish_reason or ""),
        )
