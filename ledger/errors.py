"""The ledger's errors, in a module of their own: the CLI maps them to exit codes without
importing the database stack (SQLAlchemy, alembic) for commands that never open a ledger."""

from __future__ import annotations


class LedgerError(Exception):
    """The ledger cannot be used as asked (missing, foreign, newer, unknown run): exit 2."""


class CorruptEvent(Exception):
    """A stored event that does not decode or fold: a check failed (exit 1), naming the seq."""

    def __init__(self, run: str, seq: int, problem: str) -> None:
        super().__init__(
            f"run {run}: seq {seq}: {problem} (run `skillopt verify` for the whole ledger)"
        )
        self.seq = seq
        self.problem = problem


class ConflictError(Exception):
    """Another writer appended to the run first: nothing was written, re-read and retry."""


class LedgerWriteError(Exception):
    """The database refused a write (a read-only file, a lock held by another process beyond
    the busy timeout, a full disk): the transaction was rolled back whole. Exit 1; run again
    once the cause is gone."""
