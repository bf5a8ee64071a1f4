"""Blobs: the texts events refer to by sha256 (skills, trajectories, prompts, replies),
content-addressed, so a text is stored once however often it is named."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from skillopt.ledger.database import Database, insert_new
from skillopt.ledger.errors import LedgerError
from skillopt.ledger.tables import BlobRow
from skillopt.machine.core.canonical import sha256_text


def insert_blobs(conn: Connection, pairs: dict[str, str]) -> None:
    """Store the texts not stored yet (content-addressed: a key already there is that text).

    Writers of different runs share blobs: a text another transaction stores meanwhile is
    skipped (ON CONFLICT DO NOTHING), never a failed write. Rows go in key order, so that two
    transactions storing some of the same texts wait for one another without deadlock
    (PostgreSQL)."""
    if not pairs:
        return
    have = set(conn.execute(sa.select(BlobRow.hash).where(BlobRow.hash.in_(list(pairs)))).scalars())
    rows = [{"hash": h, "text": pairs[h]} for h in sorted(pairs) if h not in have]
    if rows:
        new = insert_new(conn, BlobRow, ["hash"])
        conn.execute(sa.insert(BlobRow) if new is None else new, rows)


class Blobs(Database):
    def put_blobs(self, texts: Iterable[str]) -> list[str]:
        pairs = {sha256_text(t): t for t in texts}
        if pairs:
            with self.writing() as conn:
                insert_blobs(conn, pairs)
        return list(pairs)

    def put_blob(self, text: str) -> str:
        return self.put_blobs([text])[0]

    def check_blobs(self) -> tuple[int, list[str]]:
        """(blobs, keys of those whose bytes do not hash to their key), reading the bytes as
        stored (a text that is not UTF-8 any more is one of them)."""
        bad: list[str] = []
        n = 0
        sqlite = self.engine.dialect.name == "sqlite"  # elsewhere text is always valid UTF-8
        column = "CAST(text AS BLOB)" if sqlite else "text"
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT hash, {column} FROM blobs ORDER BY hash"))
            for key, data in rows:
                n += 1
                raw = bytes(data) if sqlite else str(data).encode("utf-8")
                if hashlib.sha256(raw).hexdigest() != key:
                    bad.append(key)
        return n, bad

    def blob_keys(self) -> set[str]:
        """The key of every stored text."""
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(BlobRow.hash)).scalars())

    def get_blobs(self, hashes: Iterable[str]) -> dict[str, str]:
        wanted = list(set(hashes))
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):  # SQLite caps the parameters of one query
                chunk = wanted[i : i + 500]
                for h, t in conn.execute(
                    sa.select(BlobRow.hash, BlobRow.text).where(BlobRow.hash.in_(chunk))
                ):
                    out[h] = t
        return out

    def find_blobs(self, prefix: str) -> list[str]:
        """Hashes of the blobs starting with `prefix` (at most 5)."""
        with self.engine.connect() as conn:
            query = sa.select(BlobRow.hash).where(BlobRow.hash.startswith(prefix.lower())).limit(5)
            return list(conn.execute(query).scalars())

    def get_blob(self, hash_: str) -> str:
        found = self.get_blobs([hash_])
        if hash_ not in found:
            raise LedgerError(f"blob {hash_[:12]} is missing from {self.location}")
        return found[hash_]
