"""SQLModel tables of the ledger. The schema itself is created by alembic migrations."""

from __future__ import annotations

from sqlmodel import Field, SQLModel


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    id: str = Field(primary_key=True)
    name: str = Field(unique=True, index=True)
    created_at: str
    config: str


class EventRow(SQLModel, table=True):
    __tablename__ = "events"
    run_id: str = Field(foreign_key="runs.id", primary_key=True)
    seq: int = Field(primary_key=True)
    type: str = Field(index=True)
    version: int
    payload: str
    recorded_at: str
    prev_hash: str
    hash: str


class BlobRow(SQLModel, table=True):
    __tablename__ = "blobs"
    hash: str = Field(primary_key=True)
    text: str
