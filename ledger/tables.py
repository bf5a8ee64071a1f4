"""SQLModel tables of the ledger. The schema itself is created by alembic migrations."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

RUN_KINDS = ("train", "bench")


class RunRow(SQLModel, table=True):
    __tablename__ = "runs"
    id: str = Field(primary_key=True)
    name: str = Field(unique=True, index=True)
    created_at: str
    config: str
    # train (the trainer's runs) or bench (skillopt bench). A server default only, so that rows
    # written without it (a schema before 0003) read as train.
    kind: str = Field(
        default="train",
        sa_column=sa.Column(sa.String(), nullable=False, server_default="train"),
    )


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


class CallRow(SQLModel, table=True):
    __tablename__ = "llm_calls"
    id: str = Field(primary_key=True)
    call_key: str = Field(index=True)
    run_id: str = Field(foreign_key="runs.id")
    step: int
    stage: str
    unit: str
    call_index: int
    request_hash: str
    role: str
    model: str
    status: str
    request_blob: str
    response_blob: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read: int = 0
    cache_write: int = 0
    latency_ms: int = 0
    retries: int = 0
    error_class: str | None = None
    error_message: str | None = None
    recorded_at: str
    finish_reason: str | None = None  # why the reply ended, as the provider said (0005)
    digest: str | None = None  # of the row's other fields, as written (0006; ledger/journal.py)


class TimingRow(SQLModel, table=True):
    """A measured wall time of an event's work (seconds), outside the hash chain."""

    __tablename__ = "timings"
    run_id: str = Field(foreign_key="runs.id", primary_key=True)
    seq: int = Field(primary_key=True)
    wall_time_s: float
    detail: str = "{}"  # JSON: finer measurements (e.g. per attempt)


class StatusViewRow(SQLModel, table=True):
    """A run's latest status view (JSON), as of event `seq` with hash `hash`: a cache, outside
    the hash chain, replaced by every append that carries one."""

    __tablename__ = "status_views"
    run_id: str = Field(foreign_key="runs.id", primary_key=True)
    seq: int
    hash: str
    format: int
    view: str
