"""A SQLite ledger's file, and how to open it when this process cannot write it (a read-only
file, directory or mount). The sqlite3 module alone: `status`'s fast path uses it too.

A ledger is in WAL mode (database.py sets it once). SQLite reads a WAL database through its
`-shm` index, which it creates beside the file; where it cannot (a read-only directory or
mount with no `-shm` left there), the only way in is `immutable=1`: SQLite then reads the
main file as it is and ignores a `-wal` file, so events a writer has not yet checkpointed
into the file are not seen. `read_only_access` says so (`note`) when such a `-wal` exists.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path


def sqlite_path(db: str) -> Path | None:
    """The file of a SQLite ledger (`--db` as a path or a sqlite:/// URL), else None."""
    if "://" not in db:
        return Path(db)
    if db.startswith("sqlite:///") and not any(c in db for c in "?%"):  # no query, no escapes
        return Path(db.removeprefix("sqlite:///"))
    return None


def writable(path: Path) -> bool:
    """Whether this process may write the ledger file and create its `-wal`/`-shm` beside it
    (root may write any file, but not on a read-only mount: os.access says EROFS)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


@dataclass(frozen=True)
class ReadOnlyAccess:
    """How to open an unwritable ledger: the sqlite3 URI, and a note for the user when some
    of what is stored cannot be seen this way (else None)."""

    uri: str
    note: str | None


def _opens(uri: str) -> bool:
    """Whether SQLite reads the ledger through `uri`: `mode=ro` needs the WAL index, a `-shm`
    beside the file or the right to make one (the probe's answer decides the way in)."""
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error:
        return False
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def read_only_access(path: Path, shown: str) -> ReadOnlyAccess:
    """`mode=ro` where SQLite can use the WAL index; else `immutable=1` (see the module)."""
    base = path.resolve().as_uri()
    read_only = f"{base}?mode=ro"
    if _opens(read_only):
        return ReadOnlyAccess(read_only, None)
    wal = path.with_name(path.name + "-wal")
    note = None
    if wal.exists() and wal.stat().st_size > 0:
        note = (
            f"ledger {shown} is read-only here and its write-ahead log ({wal.name}) cannot be "
            "read without writing: what was appended since its last checkpoint is not shown "
            "(open it where it is writable, or after the writer has closed it)"
        )
    return ReadOnlyAccess(f"{base}?mode=ro&immutable=1", note)
