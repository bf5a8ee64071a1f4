"""The LLM call journal: every model call with its deterministic key, so a resumed stage finds
its completed calls and does not pay for them again. Failed attempts are kept, never reused.

Revision ID: 0002_llm_calls
Revises: 0001_foundation
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_llm_calls"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.String(), primary_key=True),  # content-derived; failed attempts add -fN
        sa.Column("call_key", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("call_index", sa.Integer(), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),  # ok | failed
        sa.Column("request_blob", sa.String(64), nullable=False),
        sa.Column("response_blob", sa.String(64), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tokens_out", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cache_read", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("cache_write", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("latency_ms", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("retries", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error_class", sa.String(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.String(), nullable=False),
    )
    op.create_index("ix_llm_calls_key", "llm_calls", ["call_key", "status"])
    op.create_index("ix_llm_calls_run", "llm_calls", ["run_id", "stage"])


def downgrade() -> None:
    raise NotImplementedError("ledgers are never downgraded")
