"""Calling the optimizer: the prompt and the reply go to blobs, the event keeps their hashes;
and driving a pure stage with those calls.

A reply that does not parse is re-asked once, in the same unit, with the parse error; if the
second reply fails too, the caller records the failure explicitly (never a silent drop)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from skillopt.adapters.protocol import ChatRequest, Message
from skillopt.commands.context import StageContext, load_template
from skillopt.commands.journal import JournaledModel
from skillopt.machine.core.canonical import canonical_json
from skillopt.machine.core.events import CallRecord, Event, Tokens
from skillopt.machine.optimizer.asks import Ask
from skillopt.machine.optimizer.prompts import reask_message
from skillopt.machine.optimizer.replies import ReplyError
from skillopt.machine.stages.protocol import Answer, Asking, Decision, StageGen, drive

T = TypeVar("T")
DEFAULT_MAX_TOKENS = 4096  # an optimizer reply, when models.optimizer.max_tokens is unset


def _ask(
    ctx: StageContext,
    model: JournaledModel,
    purpose: str,
    system: str,
    history: Sequence[tuple[str, str]],
    user: str,
    hints: Mapping[str, Any],
    schema: Mapping[str, Any] | None,
    cache_prefix: int = 0,
) -> tuple[str, CallRecord]:
    role = ctx.config.models.optimizer
    messages = tuple(Message(r, c) for r, c in history) + (Message("user", user),)  # type: ignore[arg-type]
    request = ChatRequest(
        role="optimizer",
        system=system,
        messages=messages,
        purpose=purpose,
        hints=hints,
        max_tokens=role.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=role.temperature,
        json_schema=schema,
        # the stable part of the first user message (the current skill): a re-ask repeats
        # that message as its first turn, so it reads the same cached prefix
        cache_prefix=cache_prefix,
    )
    reply = model.complete(request)
    prompt = canonical_json(
        {
            "purpose": purpose,
            "model": ctx.optimizer.name,
            "system": system,
            "history": [list(turn) for turn in history],
            "user": user,
        }
    )
    prompt_hash, response_hash = ctx.store(prompt, reply.text)
    record = CallRecord(
        prompt_hash=prompt_hash,
        response_hash=response_hash,
        model=reply.model,
        tokens=Tokens(
            input=reply.input_tokens,
            output=reply.output_tokens,
            cached=reply.cache_read_tokens,
            written=reply.cache_write_tokens,
        ),
        call_id=model.call_ids[-1],
    )
    return reply.text, record


def ask_and_parse(
    ctx: StageContext,
    purpose: str,
    system: str,
    user: str,
    hints: Mapping[str, Any],
    schema: Mapping[str, Any] | None,
    parse: Callable[[str], T],
    *,
    step: int,
    unit: str,
    cache_prefix: int = 0,
) -> Answer[T]:
    model = ctx.model_for("optimizer", step, purpose, unit)
    first, call = _ask(ctx, model, purpose, system, (), user, hints, schema, cache_prefix)
    try:
        return Answer(parse(first), "", call, None)
    except ReplyError as exc:
        history = (("user", user), ("assistant", first))
        second, reask = _ask(
            ctx,
            model,
            purpose,
            system,
            history,
            reask_message(str(exc)),
            hints,
            schema,
            cache_prefix,
        )
        try:
            return Answer(parse(second), "", call, reask)
        except ReplyError as again:
            return Answer(None, f"{exc}; after a re-ask: {again}", call, reask)


def system_of(templates: Sequence[str]) -> str:
    """An ask's system part: its templates, in order (a mode or skill-aware suffix last)."""
    return "\n\n".join(load_template(name) for name in templates)


def send(ctx: StageContext, a: Ask, *, step: int, unit: str) -> Answer[Any]:
    """Send a pure ask (machine/optimizer/asks.py) through the call journal, with its one re-ask."""
    return ask_and_parse(
        ctx,
        a.purpose,
        system_of(a.templates),
        a.user,
        a.hints,
        a.schema,
        a.parse,
        step=step,
        unit=unit,
        cache_prefix=a.cache_prefix,
    )


def decide(
    ctx: StageContext,
    stage: StageGen | Decision,
    answered: Callable[[], None] | None = None,
) -> Event:
    """Drive a pure stage (machine/stages/) with real calls; store the texts its event refers
    to (committed with the event) and return the event. `answered`: called after each call."""

    def answer(asking: Asking) -> Answer[Any]:
        got = send(ctx, asking.ask, step=asking.step, unit=asking.unit)
        if answered is not None:
            answered()
        return got

    decision = drive(stage, answer)
    ctx.store(*decision.texts)
    return decision.event
