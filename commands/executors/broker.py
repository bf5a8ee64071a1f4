"""The call journal as Ray workers reach it: through the driver, the ledger's only writer.

A worker never holds the ledger's URL. Its model calls ask a broker actor, and a thread of
the driver (`JournalService`) answers from the ledger: `answer` (is this call key answered
already? a retried unit, or a resumed run, pays nothing for it) and `record` (a completed
call or a failed attempt, committed before the worker goes on, so before its unit can be
recorded). `started` counts the runs of a unit: more than one means its worker died and Ray
ran it again.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import asdict
from typing import Any

import ray

from skillopt.adapters.protocol import Completion
from skillopt.commands.journal import CallStore
from skillopt.ledger.tables import CallRow


class CallBroker:
    """A Ray actor (async: many workers wait on it at once) that holds the workers' requests
    until the driver's service takes them, and hands each worker its reply."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[tuple[int, str, Any]] = asyncio.Queue()
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.serial = 0

    async def ask(self, kind: str, payload: Any) -> Any:
        n, self.serial = self.serial, self.serial + 1
        future = asyncio.get_running_loop().create_future()
        self.waiting[n] = future
        await self.inbox.put((n, kind, payload))
        return await future

    async def take(self, wait_s: float) -> list[tuple[int, str, Any]]:
        try:
            first = await asyncio.wait_for(self.inbox.get(), wait_s)
        except TimeoutError:
            return []
        out = [first]
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out

    async def reply(self, replies: list[tuple[int, Any]]) -> None:
        for n, value in replies:
            future = self.waiting.pop(n, None)
            if future is not None and not future.done():  # its worker may have died meanwhile
                future.set_result(value)


class JournalUnavailable(RuntimeError):
    """The driver could not journal a worker's call (the driver then says why)."""


class BrokerCalls:
    """The CallStore of a worker: every question goes to the driver through the broker."""

    def __init__(self, broker: Any) -> None:
        self.broker = broker

    def _ask(self, kind: str, payload: Any) -> Any:
        status, value = ray.get(self.broker.ask.remote(kind, payload))
        if status != "ok":
            raise JournalUnavailable(value)
        return value

    def answer(self, call_key: str) -> Completion | None:
        found = self._ask("answer", call_key)
        return None if found is None else Completion(**found)

    def record(self, row: CallRow, texts: list[str]) -> None:
        self._ask("record", (row.model_dump(), list(texts)))

    def started(self, unit: str) -> None:
        # Not awaited: one round trip less per unit. The broker keeps a caller's requests in
        # order, so it is counted before any call of the unit (a unit that makes no call may
        # be counted after its result: only the rerun line is missed then).
        self.broker.ask.remote("started", unit)


class JournalService:
    """The driver's side: a thread that takes the workers' requests and answers them from the
    ledger (through `calls`), one at a time, as the local executor's threads would."""

    def __init__(self, broker: Any, calls: CallStore) -> None:
        self.broker = broker
        self.calls = calls
        self.starts: Counter[str] = Counter()
        self.failure: BaseException | None = None  # what stopped the service (re-raised)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="skillopt-journal", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                requests = ray.get(self.broker.take.remote(0.2))
            except BaseException as exc:  # the broker (or the cluster) is gone
                if not self._stop.is_set():
                    self.failure = exc
                return
            replies = []
            for n, kind, payload in requests:
                try:
                    replies.append((n, ("ok", self._handle(kind, payload))))
                except Exception as exc:  # a ledger that cannot be written: the run stops
                    self.failure = self.failure or exc
                    replies.append((n, ("error", f"the driver could not journal: {exc}")))
            try:
                ray.get(self.broker.reply.remote(replies))
            except BaseException as exc:
                if not self._stop.is_set():
                    self.failure = exc
                return

    def _handle(self, kind: str, payload: Any) -> Any:
        if kind == "answer":
            found = self.calls.answer(payload)
            return None if found is None else asdict(found)
        if kind == "record":
            row, texts = payload
            self.calls.record(CallRow(**row), texts)
            return None
        if kind == "started":
            self.starts[payload] += 1
            return None
        raise ValueError(f"unknown broker request {kind!r}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
