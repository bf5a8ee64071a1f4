"""Calling the optimizer: the prompt and the reply go to blobs, the event keeps their hashes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.protocol import ChatRequest, Completion, Message
from commands.context import StageContext
from machine.canonical import canonical_json
from machine.events import CallRecord, Tokens


def ask_optimizer(
    ctx: StageContext,
    purpose: str,
    system: str,
    user: str,
    hints: Mapping[str, Any],
    schema: Mapping[str, Any] | None,
    *,
    step: int,
    unit: str,
) -> tuple[Completion, CallRecord]:
    role = ctx.config.models.optimizer
    request = ChatRequest(
        role="optimizer",
        system=system,
        messages=(Message("user", user),),
        purpose=purpose,
        hints=hints,
        max_tokens=role.max_tokens,
        temperature=role.temperature,
        json_schema=schema,
    )
    model = ctx.model_for("optimizer", step, purpose, unit)
    reply = model.complete(request)
    prompt = canonical_json(
        {"purpose": purpose, "model": ctx.optimizer.name, "system": system, "user": user}
    )
    prompt_hash, response_hash = ctx.store(prompt, reply.text)
    record = CallRecord(
        prompt_hash=prompt_hash,
        response_hash=response_hash,
        model=reply.model,
        tokens=Tokens(input=reply.input_tokens, output=reply.output_tokens),
        call_id=model.call_ids[-1],
    )
    return reply, record
