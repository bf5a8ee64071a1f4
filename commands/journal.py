"""Every model call goes through the journal. Its key is the run, step, stage, unit, the call's
index within the unit and the sha256 of the full request (role, model, system, messages,
parameters). A completed answer is committed before the caller goes on and, when the same
call comes again (a stage re-run after a crash), it is returned from the journal and costs
nothing. A failed attempt is recorded but never reused as an answer.

Where the journal is kept is a `CallStore`: the ledger itself (`LedgerCalls`) in the driver's
process, or, in a Ray worker, the driver reached through a broker
(commands/executors/broker.py), so a worker never holds the ledger's URL."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from skillopt.adapters.models.remote import retry_listener
from skillopt.adapters.protocol import ChatModel, ChatRequest, Completion, ModelCallError
from skillopt.ledger.journal import Journal
from skillopt.ledger.ledger import Ledger
from skillopt.ledger.tables import CallRow
from skillopt.machine.core.canonical import canonical_json, sha256_text


class CallStore(Protocol):
    """The call journal as a model wrapper needs it: the answer recorded under a key, and
    recording a call (committed when `record` returns)."""

    def answer(self, call_key: str) -> Completion | None: ...

    def record(self, row: CallRow, texts: list[str]) -> None: ...


@dataclass
class LedgerCalls:
    """The journal in the ledger (the driver's process)."""

    ledger: Ledger

    def answer(self, call_key: str) -> Completion | None:
        found = Journal(self.ledger).answer(call_key)
        if found is None or found.response_blob is None:
            return None
        return Completion(
            text=self.ledger.get_blob(found.response_blob),
            model=found.model,
            input_tokens=found.tokens_in,
            output_tokens=found.tokens_out,
            cache_read_tokens=found.cache_read,
            cache_write_tokens=found.cache_write,
            finish_reason=found.finish_reason or "",
        )

    def record(self, row: CallRow, texts: list[str]) -> None:
        Journal(self.ledger).record(row, texts)


def request_text(role: str, model: str, request: ChatRequest) -> str:
    return canonical_json(
        {
            "role": role,
            "model": model,
            "system": request.system,
            "messages": [[m.role, m.content] for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "json_schema": request.json_schema,
        }
    )


def cache_key(run_id: str, role: str, request: ChatRequest) -> str:
    """The requests that share a cached prefix, per run, role and skill: the skill is the
    first message's stable part when the request names one (the optimizer's current skill),
    else the system prompt (the target's skill). Under 64 characters (OpenAI's limit)."""
    first = request.messages[0].content if request.messages else ""
    skill = first[: request.cache_prefix] if request.cache_prefix else request.system
    return f"skillopt-{run_id}-{role}-{sha256_text(skill)[:16]}"


@dataclass
class JournaledModel:
    """The model as one unit of work sees it; `call_ids` lists the calls the unit made."""

    inner: ChatModel
    journal: CallStore
    run_id: str
    role: str
    step: int
    stage: str
    unit: str
    clock: Callable[[], str]
    max_tokens: int | None = None  # the role's reply limit, over what the request asks
    call_ids: list[str] = field(default_factory=list)
    # prompt-cache writes of the unit's calls: environments report reads (cached_tokens), not
    # writes, so the shell counts these itself
    cache_written: int = 0
    _index: int = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def complete(self, request: ChatRequest) -> Completion:
        if request.role != self.role:  # never send one role's request to another's model
            raise ModelCallError(
                f"a {request.role!r} request was made through the {self.role!r} model "
                f"(stage {self.stage}); an environment reaches a judge through its `judge` model"
            )
        if self.max_tokens is not None:
            request = replace(request, max_tokens=self.max_tokens)
        index, self._index = self._index, self._index + 1
        text = request_text(self.role, self.inner.name, request)  # cache hints left out
        if request.cache_key is None:
            request = replace(request, cache_key=cache_key(self.run_id, self.role, request))
        request_hash = sha256_text(text)
        key = sha256_text(
            canonical_json([self.run_id, self.step, self.stage, self.unit, index, request_hash])
        )
        call_id = "c" + key[:15]
        self.call_ids.append(call_id)
        journal = self.journal
        found = journal.answer(key)
        if found is not None:
            self.cache_written += found.cache_write_tokens
            return found
        request_blob = request_hash  # the text is stored with the call's record, in one commit
        row = CallRow(
            id=call_id,
            call_key=key,
            run_id=self.run_id,
            step=self.step,
            stage=self.stage,
            unit=self.unit,
            call_index=index,
            request_hash=request_hash,
            role=self.role,
            model=self.inner.name,
            status="failed",
            request_blob=request_blob,
            recorded_at="",
        )
        start = time.monotonic()

        def attempt_failed(error: BaseException, attempt: int) -> None:
            journal.record(
                row.model_copy(
                    update={
                        "error_class": type(error).__name__,
                        "error_message": f"attempt {attempt + 1}: {error}"[:2000],
                        "retries": attempt,
                        "latency_ms": int((time.monotonic() - start) * 1000),
                        "recorded_at": self.clock(),
                    }
                ),
                [text],
            )

        try:
            with retry_listener(attempt_failed):  # transient failures are attempts, never answers
                reply = self.inner.complete(request)
        except Exception as exc:
            row.error_class, row.error_message = type(exc).__name__, str(exc)[:2000]
            row.latency_ms, row.recorded_at = int((time.monotonic() - start) * 1000), self.clock()
            journal.record(row, [text])
            raise
        response_blob = sha256_text(reply.text)
        row.status, row.response_blob, row.model = "ok", response_blob, reply.model
        row.tokens_in, row.tokens_out = reply.input_tokens, reply.output_tokens
        row.cache_read, row.cache_write, row.retries = (
            reply.cache_read_tokens,
            reply.cache_write_tokens,
            reply.retries,
        )
        row.finish_reason = reply.finish_reason or None
        row.latency_ms, row.recorded_at = int((time.monotonic() - start) * 1000), self.clock()
        journal.record(row, [text, reply.text])
        self.cache_written += reply.cache_write_tokens
        return reply
