"""Long synthetic runs for the benchmarks, built from a real one.

A real small run of the `sim` config is made through the CLI (offline model). Its epochs are
then repeated, with step and epoch numbers shifted and the skills each epoch builds renamed
(their texts get an epoch marker and are stored as blobs, so every hash names a stored text),
until the run has the wanted number of events. The result folds with the real reducer and is
appended through the real ledger API (hash chain, durable commits); its item scores are those
of the real run. It is not a run `replay --verify` accepts (the repeated epochs re-use the
first epochs' plans and replies), and is not meant to be: it measures folding, rendering,
reading and appending at a realistic shape (rollouts per step, candidates per epoch).
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from skillopt.commands.runner import record, status_of
from skillopt.ledger.ledger import Ledger
from skillopt.machine.core.canonical import sha256_text
from skillopt.machine.core.events import Event, RunCreated
from skillopt.machine.loop.reducer import reduce

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the benchmarks reuse the tests' helpers (tests/ is no package
    sys.path.insert(0, str(ROOT))  # on the path when a script runs from benchmarks/)

# A template with the shape of a real run: 2 steps per epoch, 24 train rollouts per step,
# 48 selection rollouts per candidate, 6 reflection minibatches per step.
TEMPLATE = [
    "--set",
    "train.num_epochs=2",
    "--set",
    "env.options.train=48",
    "--set",
    "train.batch_size=24",
    "--set",
    "env.options.selection=48",
    "--set",
    "env.options.test=24",
]
SHIFTED = {"step", "first_step", "last_step", "best_step"}


def machine_line() -> str:
    """The machine the figures were measured on."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}, load average {load:.1f}"
    )


def skillopt(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "skillopt", *args],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def template_run(folder: Path) -> Path:
    """A real finished run, through the CLI."""
    db = folder / "template.db"
    skillopt("init", "examples/sim.yaml", "--db", str(db), "--name", "template", *TEMPLATE)
    skillopt("run", "--db", str(db))
    return db


def _rewrite(value: Any, steps: int, epochs: int, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in SHIFTED and isinstance(v, int) and v > 0:
                out[k] = v + steps
            elif k == "epoch" and isinstance(v, int) and v > 0:
                out[k] = v + epochs
            else:
                out[k] = _rewrite(v, steps, epochs, names)
        return out
    if isinstance(value, list):
        return [_rewrite(v, steps, epochs, names) for v in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value


def synthesize(template_db: Path, events: int) -> tuple[list[Event], dict[str, str], str]:
    """(events, blob texts, run name): a run of about `events` events."""
    ledger = Ledger.open(str(template_db))
    try:
        run = ledger.find_run(None)
        stored = ledger.read(run.id)
        texts = ledger.get_blobs([h for e in stored for h in _hashes(e.payload)])
    finally:
        ledger.close()
    types = [e.type for e in stored]
    starts = [i for i, t in enumerate(types) if t == "epoch.planned"]
    end = types.index("final.evaluated")
    prefix, suffix = stored[: starts[0]], stored[end:]
    blocks = [stored[a:b] for a, b in zip(starts, [*starts[1:], end], strict=True)]
    spe = stored[1].payload["steps_per_epoch"]
    built = {e.payload["candidate_hash"] for e in stored if e.type == "candidate.built"}
    built.discard(stored[0].payload["initial_skill_hash"])
    per_epoch = sum(len(b) for b in blocks) / len(blocks)
    n_epochs = max(len(blocks), math.ceil((events - len(prefix) - len(suffix)) / per_epoch))

    created = dict(stored[0].payload)
    config = dict(created["config"])
    config["train"] = {**config["train"], "num_epochs": n_epochs}
    name = f"synthetic-{events}"
    out: list[dict[str, Any]] = [
        {"type": "run.created", "payload": {**created, "config": config, "run_name": name}}
    ]
    loaded = dict(stored[1].payload)
    loaded["total_steps"] = spe * n_epochs
    out.append({"type": "dataset.loaded", "payload": loaded})
    out += [{"type": e.type, "payload": e.payload} for e in prefix[2:]]
    blobs = dict(texts)
    for epoch in range(1, n_epochs + 1):
        k = (epoch - 1) % len(blocks)
        block = blocks[k]
        shift_epochs = epoch - (k + 1)
        names: dict[str, str] = {}
        if shift_epochs:
            for h in built:
                if h in texts:
                    text = texts[h] + f"\n<!-- synthetic epoch {epoch} -->\n"
                    names[h] = sha256_text(text)
                    blobs[names[h]] = text
        for e in block:
            payload = _rewrite(e.payload, shift_epochs * spe, shift_epochs, names)
            out.append({"type": e.type, "payload": payload})
    out += [{"type": e.type, "payload": e.payload} for e in suffix]
    return [_parse(row, stored) for row in out], blobs, name


def _parse(row: dict[str, Any], stored: Sequence[Any]) -> Event:
    from skillopt.machine.core.events import parse_event

    version = next(e.version for e in stored if e.type == row["type"])
    return parse_event(row["type"], version, row["payload"])


def _hashes(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _hashes(v)
    elif isinstance(value, list):
        for v in value:
            yield from _hashes(v)
    elif isinstance(value, str) and len(value) == 64:
        yield value


def stage_batches(events: Sequence[Event]) -> Iterator[list[Event]]:
    """Consecutive events of one type (a stage's rollouts, a reflection's proposals)."""
    batch: list[Event] = []
    for e in events:
        if batch and e.TYPE != batch[-1].TYPE:
            yield batch
            batch = []
        batch.append(e)
    if batch:
        yield batch


def write_ledger(
    db: Path, events: Sequence[Event], blobs: dict[str, str], name: str, batch: int = 1000
) -> str:
    """Append the run through the ledger API as the runner does (each batch with the status
    view after it); returns its run id."""
    ledger = Ledger.open(str(db), create=True)
    try:
        ledger.put_blobs(blobs.values())
        run_id = "r" + sha256_text(name)[:12]
        first = events[0]
        assert isinstance(first, RunCreated)
        stamp = "2025-01-01T00:00:00+00:00"
        state = reduce([first])
        ledger.create_run(run_id, name, first.config, stamp, first, status=status_of(state))
        for i in range(1, len(events), batch):
            state = record(ledger, run_id, state, list(events[i : i + batch]), stamp)[1]
        return run_id
    finally:
        ledger.close()


def build(
    folder: Path, sizes: Sequence[int], keep_events: bool = False
) -> dict[int, tuple[Path, list[Event], str]]:
    """One template run, then a ledger per size: {size: (db, events or [], run id)}."""
    template = template_run(folder)
    out = {}
    for size in sizes:
        events, blobs, name = synthesize(template, size)
        db = folder / f"synthetic-{size}.db"
        out[size] = (db, events if keep_events else [], write_ledger(db, events, blobs, name))
    return out


if __name__ == "__main__":  # a quick look: python benchmarks/synthetic.py 20000
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [int(a) for a in sys.argv[1:]]
        for size, (db, events, _) in build(Path(tmp), sizes, keep_events=True).items():
            print(size, len(events), db.stat().st_size)
