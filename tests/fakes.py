"""Loopback servers speaking the Anthropic Messages and OpenAI Chat Completions wire formats.

The real SDKs talk to them through base_url. Replies follow the sim environment's rules (the
target answers with the rule the skill states, like the offline target) and a plain optimizer
policy read from the prompt text, so a run over them learns. Faults are scripted per request:
status codes with their error bodies and Retry-After, slow replies, malformed or truncated
bodies. Every request is logged, with the usage it was answered with.

With `caching=True` the usage follows the providers' prompt-caching rules (tests/fake_cache.py:
Anthropic's breakpoints and minimum prefix per model, OpenAI's automatic prefix caching
routed by prompt_cache_key); without, every answer reports a fixed usage (11 fresh + 5
cache-read input tokens, 7 output; OpenAI 11 input of which 3 cached) that older tests pin.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from skillopt.adapters.environments.sim import TASK_TYPES, SimEnvironment
from skillopt.adapters.models.offline import OfflineModel
from skillopt.adapters.protocol import ChatRequest, Message
from tests.fake_cache import CacheRules, TooManyBreakpoints, text_of

RULES_HEADING = "## Formatting rules"


@dataclass
class Fault:
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    body: bytes | None = None  # raw body (malformed or truncated JSON) instead of an error
    huge: int = 0  # a well-formed answer of this many characters instead of an error
    content_type: str = "application/json"
    text: str | None = None  # a well-formed answer with this text instead of an error
    model: str | None = None  # only a request for this model takes the fault


@dataclass
class Logged:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int
    usage: dict[str, Any] | None = None  # what a model answer reported


@dataclass
class FakeProvider:
    env_options: dict[str, Any] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    log: list[Logged] = field(default_factory=list)
    latency_s: float = 0.0  # added to every request, so a kill can land mid-stage
    # How a server that cannot do structured output answers the optimizer: "prose" ignores
    # response_format and forced tool use (plain text back), "truncate" cuts every reply at
    # the request's max tokens (finish_reason length / stop_reason max_tokens).
    optimizer_mode: str = ""
    caching: bool = False  # usage under the providers' caching rules (see the module's doc)
    cache_min: dict[str, int] = field(default_factory=dict)  # model -> minimum prefix

    def __post_init__(self) -> None:
        self.cache = CacheRules(dict(self.cache_min))
        env = SimEnvironment(self.env_options)
        self.items = {
            i.prompt: i for split in ("train", "selection", "test") for i in env.items(split)
        }
        self.target = OfflineModel("target", "fake", {})
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.handle_error = lambda *args: None  # a client that timed out closed its socket
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- replies ---------------------------------------------------------------------------

    def answer(self, system: str, user: str) -> str:
        item = self.items.get(user)
        if item is not None:  # a sim rollout
            request = ChatRequest(
                "target",
                system,
                (Message("user", user),),
                "rollout",
                SimEnvironment.target_hints(item),
            )
            return self.target.complete(request).text
        if user.startswith("Reply with the JSON object"):  # doctor's structured-output probe
            return json.dumps({"ok": True})
        if "Merge group:" in user:
            edits, seen = [], set()
            for block in re.findall(r"### Patch \d+\n(.*?)(?=\n\n### Patch|\Z)", user, re.S):
                for edit in json.loads(block):
                    key = (edit["op"], edit["target"], edit["content"])
                    if key not in seen:
                        seen.add(key)
                        edits.append(edit)
            return json.dumps({"reasoning": "deduplicated", "edits": edits})
        if "## Candidate edits" in user:
            budget = int(re.search(r"Select at most (\d+) edits", user).group(1))  # type: ignore[union-attr]
            n = len(re.findall(r"^\[\d+\]", user, re.M))
            return json.dumps(
                {"reasoning": "first ones", "selected_indices": list(range(min(n, budget)))}
            )
        failed = re.findall(r"### Trajectory \d+: \S+ \[(\w+)\] FAILED", user)
        edits = []
        for task_type in dict.fromkeys(failed):
            rule = TASK_TYPES[task_type].rule
            if not re.search(rule.pattern, user.split("## Budget")[0]):
                edits.append(
                    {"op": "insert_after", "target": RULES_HEADING, "content": f"- {rule.text}"}
                )
        return json.dumps(
            {
                "batch_size": len(failed),
                "failure_summary": [],
                "patch": {"reasoning": "state the missing rules", "edits": edits[:2]},
            }
        )

    def degraded(self, body: dict[str, Any], text: str) -> dict[str, Any]:
        """An optimizer reply from a server that cannot honour the structured-output request."""
        anthropic = "max_tokens" in body and "system" in body
        limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        if self.optimizer_mode == "prose":
            text = "Sure! I would add a rule about dates and another about money."
            used = 14
        else:  # truncate: the JSON is cut where the token limit fell
            text, used = text[: max(1, len(text) // 3)], limit
        if anthropic:
            out = {**self.anthropic_body({**body, "tool_choice": None}, text)}
            out["stop_reason"] = "max_tokens" if self.optimizer_mode == "truncate" else "end_turn"
            out["usage"] = {**out["usage"], "output_tokens": used}
            return out
        out = self.openai_body(body, text)
        if self.optimizer_mode == "truncate":
            out["choices"][0]["finish_reason"] = "length"
        out["usage"] = {**out["usage"], "completion_tokens": used}
        return out

    # -- wire formats ----------------------------------------------------------------------

    @staticmethod
    def anthropic_body(body: dict[str, Any], text: str) -> dict[str, Any]:
        if body.get("tool_choice"):
            content = [
                {"type": "tool_use", "id": "toolu_1", "name": "reply", "input": json.loads(text)}
            ]
        else:
            content = [{"type": "text", "text": text}]
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 11,
                "output_tokens": 7,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 5,
            },
        }

    @staticmethod
    def openai_body(body: dict[str, Any], text: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {
                "prompt_tokens": 11,
                "completion_tokens": 7,
                "total_tokens": 18,
                "prompt_tokens_details": {"cached_tokens": 3},
            },
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(
                self,
                status: int,
                payload: bytes,
                headers: dict[str, str] | None = None,
                content_type: str = "application/json",
            ) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                body = json.loads(raw)
                anthropic = self.path.endswith("/messages")
                with fake.lock:
                    fault = next((f for f in fake.faults if f.model in (None, body["model"])), None)
                    if fault is not None:
                        fake.faults.remove(fault)
                answer = fault is not None and (fault.huge or fault.text is not None)
                status = fault.status if fault and fault.body is None and not answer else 200
                headers = {k.lower(): v for k, v in self.headers.items()}
                logged = Logged(self.path, headers, body, status)
                fake.log.append(logged)
                if fault is not None and answer:
                    text = fault.text if fault.text is not None else "x" * fault.huge
                    out = (
                        fake.anthropic_body(body, text)
                        if anthropic
                        else fake.openai_body(body, text)
                    )
                    if fake.caching:  # a scripted answer reads and writes the cache too
                        rules = fake.cache.anthropic if anthropic else fake.cache.openai
                        out["usage"] = rules(body, text)
                    logged.usage = out["usage"]
                    return self._send(200, json.dumps(out).encode())
                if fault is not None:
                    time.sleep(fault.delay_s)
                    if fault.body is not None:
                        return self._send(200, fault.body, content_type=fault.content_type)
                    kind = "rate_limit_error" if fault.status == 429 else "api_error"
                    error = (
                        {
                            "type": "error",
                            "error": {"type": kind, "message": f"injected {fault.status}"},
                        }
                        if anthropic
                        else {"error": {"message": f"injected {fault.status}", "type": kind}}
                    )
                    headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
                    return self._send(fault.status, json.dumps(error).encode(), headers)
                time.sleep(fake.latency_s)
                if anthropic:
                    system = "".join(b["text"] for b in body["system"])
                else:
                    system = text_of(body["messages"][0]["content"])
                user = text_of(body["messages"][-1]["content"])
                text = fake.answer(system, user)
                if fake.optimizer_mode and user not in fake.items:
                    out = fake.degraded(body, text)
                else:
                    out = (
                        fake.anthropic_body(body, text)
                        if anthropic
                        else fake.openai_body(body, text)
                    )
                if fake.caching:
                    try:
                        rules = fake.cache.anthropic if anthropic else fake.cache.openai
                        out["usage"] = rules(body, text)
                    except TooManyBreakpoints as exc:
                        logged.status = 400
                        error = {"type": "invalid_request_error", "message": str(exc)}
                        return self._send(
                            400, json.dumps({"type": "error", "error": error}).encode()
                        )
                logged.usage = out["usage"]
                return self._send(200, json.dumps(out).encode())

        return Handler
