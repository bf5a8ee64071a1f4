"""Tampering: flip one byte of a random event payload, event hash (or prev_hash), stored text
(blob) or the stored status view of a copy of a finished ledger, 200 times with a fixed seed.
`skillopt verify` catches every flip: exit 1 with one line that names the event's seq or the
blob, never a traceback, even when the flipped byte leaves a text that is not UTF-8 or a
payload that is not JSON, or keeps the payload's value."""

from __future__ import annotations

import json
import random
import re
import shutil
import sqlite3
from pathlib import Path

from skillopt.ledger.ledger import Ledger
from skillopt.machine.core.events import StageFailed
from tests.conftest import EXAMPLE, SMALL, Cli
from tests.tamper_kit import BY_DESIGN, CAMPAIGN, mutate

FLIPS = 200
SEED = 1312


def flip_one_byte(db: Path, rng: random.Random) -> tuple[str, str]:
    """Flip a byte in place; returns (what, the name verify must give: 'seq N' or 'blob H')."""
    kind = rng.choice(["payload", "hash", "blob", "view"])
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER IF EXISTS events_no_update")
        if kind == "blob":
            table, column = "blobs", "text"
        elif kind == "view":
            table, column = "status_views", "view"
        else:
            table, column = (
                "events",
                kind if kind == "payload" else rng.choice(["hash", "prev_hash"]),
            )
        (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        rowid, key, value = conn.execute(
            f"SELECT rowid, {'hash' if table == 'blobs' else 'seq'}, CAST({column} AS BLOB) "
            f"FROM {table} ORDER BY rowid LIMIT 1 OFFSET ?",
            (rng.randrange(n),),
        ).fetchone()
        data = bytearray(value)
        at = rng.randrange(len(data))
        data[at] ^= rng.randrange(1, 256)
        conn.execute(
            f"UPDATE {table} SET {column} = CAST(? AS TEXT) WHERE rowid = ?", (bytes(data), rowid)
        )
    what = f"{table}.{column} of {key if table != 'blobs' else key[:12]} at byte {at}"
    return what, (f"seq {key}" if table != "blobs" else f"blob {key[:12]}")


def test_every_flipped_byte_is_caught_by_verify(cli: Cli, tmp_path: Path) -> None:
    original = tmp_path / "original.db"
    assert cli("init", str(EXAMPLE), "--db", str(original), "--name", "t", *SMALL).code == 0
    assert cli("run", "--db", str(original)).code == 0
    assert cli("verify", "--db", str(original)).code == 0
    rng = random.Random(SEED)
    missed, kinds = [], set()
    for _ in range(FLIPS):
        copy = tmp_path / "copy.db"
        shutil.copy(original, copy)
        what, name = flip_one_byte(copy, rng)
        kinds.add(what.split(" ")[0])
        res = cli("verify", "--db", str(copy), "--json")
        lines = res.err.strip().splitlines()
        caught = res.code == 1 and len(lines) == 1 and lines[0].startswith("failed: ")
        if not (caught and name in lines[0] and not json.loads(res.out)["ok"]):
            missed.append((what, res.code, res.err.strip()[:200]))
        copy.unlink()
    assert kinds == {
        "events.payload",
        "events.hash",
        "events.prev_hash",
        "blobs.text",
        "status_views.view",
    }
    assert missed == []


def test_a_changed_byte_that_keeps_the_payload_value_is_caught(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "t", *SMALL).code == 0
    assert cli("run", "--db", str(db), "--max-stages", "2").code == 0
    # a payload with an escaped control character, appended as skillopt appends (hash chain)
    ledger = Ledger.open(str(db))
    run = ledger.find_run("t")
    last = len(ledger.read(run.id))
    failed = StageFailed(stage="rollout", step=1, error_type="E", message="tiny \x1f")
    ledger.append(run.id, last, [failed], "2026-01-01T00:00:00")
    ledger.close()
    with sqlite3.connect(db) as conn:
        (text,) = conn.execute("SELECT payload FROM events WHERE seq = ?", (last + 1,)).fetchone()
    assert "\\u001f" in text
    assert cli("verify", "--db", str(db)).code == 0
    for old, new in [("\\u001f", "\\u001F"), ('"message":"tiny', '"message": "tiny')]:
        forged = text.replace(old, new)
        assert forged != text and json.loads(forged) == json.loads(text)  # the same value
        copy = tmp_path / "copy.db"
        shutil.copy(db, copy)
        with sqlite3.connect(copy) as conn:
            conn.execute("DROP TRIGGER IF EXISTS events_no_update")
            conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (forged, last + 1))
        res = cli("verify", "--db", str(copy))
        assert res.code == 1
        assert f"seq {last + 1}: payload is not the text that was written" in res.err
        copy.unlink()


def test_a_payload_with_nan_is_named_not_a_traceback(cli: Cli, tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    assert cli("init", str(EXAMPLE), "--db", str(db), "--name", "t", *SMALL).code == 0
    assert cli("run", "--db", str(db), "--max-stages", "2").code == 0  # a baseline with a score
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER IF EXISTS events_no_update")
        seq, text = conn.execute(
            "SELECT seq, payload FROM events WHERE type = 'baseline.evaluated'"
        ).fetchone()
        nan = re.sub(r'"hard":[0-9.e-]+', '"hard":NaN', text)
        assert nan != text
        conn.execute("UPDATE events SET payload = ? WHERE seq = ?", (nan, seq))
    for command in (["verify"], ["status", "--fold"], ["replay", "--verify"]):
        res = cli(*command, "--db", str(db))
        lines = res.err.strip().splitlines()
        assert res.code == 1 and len(lines) == 1, (command, res.err)
        assert f"seq {seq}" in lines[0] and "NaN is not a JSON value" in lines[0], command


def test_a_seeded_campaign_over_every_table(cli: Cli, tmp_path: Path) -> None:
    """Each mutation is named by verify (exit 1, one line) or is one of BY_DESIGN; no command
    ends in a traceback on any of them."""
    original = tmp_path / "original.db"
    assert cli("init", str(EXAMPLE), "--db", str(original), "--name", "t", *SMALL).code == 0
    assert cli("run", "--db", str(original)).code == 0
    rng = random.Random(SEED)
    missed, seen, by_design = [], set(), 0
    for _ in range(CAMPAIGN):
        copy = tmp_path / "copy.db"
        shutil.copy(original, copy)
        what = mutate(copy, rng)
        kind = " ".join(what.split()[:2])
        seen.add(kind)
        res = cli("verify", "--db", str(copy))
        lines = res.err.strip().splitlines()
        for command in (["status", "--fold"], ["calls", "--json"], ["report", "--md"]):
            other = cli(*command, "--db", str(copy))
            assert "Traceback" not in other.err and len(other.err.strip().splitlines()) <= 1
        caught = res.code == 1 and len(lines) == 1 and lines[0].startswith("failed: ")
        if kind in BY_DESIGN:
            by_design += 1
        elif not caught:
            missed.append((what, res.code, res.err.strip()[:200]))
        copy.unlink()
    assert len(seen) == 7 and missed == [], missed
    assert by_design < CAMPAIGN // 3
