"""The dashboard's reads: each function takes the open ledger and what the URL named, reads
what the page needs, and returns the page data of machine/reports/dashboard.py. Nothing here
writes: only Ledger reads (runs, events, status views, blobs) and the call journal's queries.

A run may be appending while a page reads it: each read is one query (one snapshot), events
are folded from one read, and the texts they name were committed with or before them."""

from __future__ import annotations

import json
from typing import Any

from skillopt.commands.errors import InputError

PAGE = 200  # calls per page of the journal


def _train_run(ledger: Any, ref: str) -> Any:
    row = ledger.find_run(ref)
    if row.kind != "train":
        raise InputError(f"run {row.name} is a bench run: `skillopt bench` reports it")
    return row


def runs(ledger: Any) -> list[dict[str, Any]]:
    from skillopt.commands.api import run_overview
    from skillopt.machine.reports.dashboard import runs_table

    return runs_table(run_overview(ledger))


def status(ledger: Any, ref: str) -> dict[str, Any]:
    """The live facts of a run, from its stored status view (one row) when it describes the
    last event, else folded: what the run page polls."""
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.dashboard import progress
    from skillopt.machine.reports.status_format import STATUS_FORMAT
    from skillopt.machine.reports.views import status_view

    row = _train_run(ledger, ref)
    view = ledger.current_status(row.id, STATUS_FORMAT)
    if view is None:
        view = status_view(load_state(ledger, row.id))
    return progress(view)


def run(ledger: Any, ref: str) -> dict[str, Any]:
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.dashboard import run_page

    row = _train_run(ledger, ref)
    return run_page(load_state(ledger, row.id)) | {"id": row.id}


def skill(ledger: Any, ref: str, skill_ref: str, against: str | None) -> dict[str, Any]:
    from skillopt.commands.api import skill_hash
    from skillopt.commands.runner import load_state
    from skillopt.machine.reports.dashboard import default_against, skill_page

    row = _train_run(ledger, ref)
    state = load_state(ledger, row.id)
    skill = skill_hash(state, skill_ref, row.name)
    other = skill_hash(state, against, row.name) if against else default_against(state, skill)
    texts = ledger.get_blobs({skill, other})
    return skill_page(state, skill, other, texts) | {"id": row.id}


def calls(
    ledger: Any,
    ref: str,
    role: str | None,
    stage: str | None,
    unit: str | None,
    step: int | None,
    offset: int,
) -> dict[str, Any]:
    """A page of the call journal, filtered (role, stage, a unit substring such as an item id,
    a step); the choices of the role and stage filters come from the whole journal."""
    from skillopt.commands.api import call_rows

    row = _train_run(ledger, ref)
    every = call_rows(ledger, row.id, None)
    kept = [
        c
        for c in every
        if (not role or c["role"] == role)
        and (not stage or c["stage"] == stage)
        and (not unit or unit in c["unit"])
        and (step is None or c["step"] == step)
    ]
    return {
        "id": row.id,
        "run": row.name,
        "roles": sorted({c["role"] for c in every}),
        "stages": sorted({c["stage"] for c in every}),
        "filters": {"role": role or "", "stage": stage or "", "unit": unit or "", "step": step},
        "total": len(kept),
        "offset": offset,
        "page": PAGE,
        "calls": kept[offset : offset + PAGE],
    }


def call(ledger: Any, ref: str, call_id: str) -> dict[str, Any]:
    """One journaled call: its facts, the request (system, messages) and the reply."""
    from skillopt.ledger.journal import Journal

    row = _train_run(ledger, ref)
    found = [c for c in Journal(ledger).find(call_id) if c.run_id == row.id and c.id == call_id]
    if not found:
        raise InputError(f"run {row.name} has no call {call_id!r}")
    c = found[0]
    request = json.loads(ledger.get_blob(c.request_blob))
    return {
        "id": row.id,
        "run": row.name,
        "call": c.model_dump(),
        "system": request.get("system", ""),
        "messages": [{"role": r, "content": text} for r, text in request.get("messages", [])],
        "reply": ledger.get_blob(c.response_blob) if c.response_blob else None,
    }


def blob(ledger: Any, hash_: str) -> dict[str, Any]:
    """A stored text by its full hash (the `why` chain names prompts and replies so)."""
    if len(hash_) != 64 or any(ch not in "0123456789abcdef" for ch in hash_):
        raise InputError(f"blob {hash_[:80]!r}: not a sha256 hash")
    texts = ledger.get_blobs([hash_])
    if hash_ not in texts:
        raise InputError(f"no stored text has hash {hash_}")
    return {"hash": hash_, "text": texts[hash_]}
