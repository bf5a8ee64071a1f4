"""The call journal against the events: every call an event names (its id, reply and tokens)
must be in the journal as the event says, answered. The events are hash-chained, the journal
is not: a journal row that was swapped, edited or deleted under an event shows here. Rows no
event names (failed attempts, the calls of a unit a kill cut short) are not checked."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from skillopt.machine.core import events as ev


@dataclass(frozen=True)
class JournalRow:
    status: str
    role: str
    response_blob: str | None
    tokens: tuple[int, int, int]  # input, output, cached input
    written: int = 0  # input written to the prompt cache


def _writes(what: str, journaled: int, recorded: int) -> None:
    """Cache writes are in the events since issue 14: an event that records none may predate
    that (its calls' writes are journaled all the same), one that records some must match."""
    if recorded and journaled != recorded:
        raise LookupError(
            f"{what}: the journal holds {journaled} cache-write tokens, the event says {recorded}"
        )


def _call_records(value: object) -> Iterator[ev.CallRecord]:
    if isinstance(value, ev.CallRecord):
        yield value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _call_records(getattr(value, name))
    elif isinstance(value, list | tuple):
        for inner in value:
            yield from _call_records(inner)


def _row(rows: Mapping[str, JournalRow], call_id: str) -> JournalRow:
    row = rows.get(call_id)
    if row is None:
        raise LookupError(f"call {call_id} is missing from the call journal")
    if row.status != "ok":
        raise LookupError(f"call {call_id} is journaled as {row.status}, not answered")
    return row


def _rollout(e: ev.RolloutScored, rows: Mapping[str, JournalRow]) -> None:
    sums: dict[str, list[int]] = {"target": [0, 0, 0], "judge": [0, 0, 0]}
    written: dict[str, int] = {}
    for call_id in e.call_ids:
        row = _row(rows, call_id)
        total = sums.setdefault(row.role, [0, 0, 0])
        for k in range(3):
            total[k] += row.tokens[k]
        written[row.role] = written.get(row.role, 0) + row.written
    judge = e.judge_tokens or ev.Tokens()
    for role, tokens in (("target", e.tokens), ("judge", judge)):
        _writes(f"the {role} calls of item {e.item_id}", written.get(role, 0), tokens.written)
        if tuple(sums[role]) != (tokens.input, tokens.output, tokens.cached):
            raise LookupError(
                f"the {role} calls of item {e.item_id} journal tokens {tuple(sums[role])}, "
                f"the event says {(tokens.input, tokens.output, tokens.cached)}"
            )


def check_journal(
    events: Sequence[tuple[int, ev.Event]], rows: Mapping[str, JournalRow]
) -> tuple[int, str] | None:
    """The first event whose calls the journal contradicts: (seq, what), or None."""
    for seq, e in events:
        try:
            if isinstance(e, ev.RolloutScored):
                _rollout(e, rows)
                continue
            for call in _call_records(e):
                if not call.call_id:  # recorded before calls were named
                    continue
                row = _row(rows, call.call_id)
                if row.response_blob != call.response_hash:
                    raise LookupError(f"call {call.call_id}: the journal holds another reply")
                t = call.tokens
                _writes(f"call {call.call_id}", row.written, t.written)
                if row.tokens != (t.input, t.output, t.cached):
                    raise LookupError(
                        f"call {call.call_id}: the journal's tokens {row.tokens} are not the "
                        f"event's {(t.input, t.output, t.cached)}"
                    )
        except LookupError as exc:
            return seq, f"{e.TYPE}: {exc}"
    return None
