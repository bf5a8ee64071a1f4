"""Bench runs: a run has a kind (`train`, the default, or `bench`), and measured wall times live
in a table of their own, next to the events and outside their hash chain (like `recorded_at`),
so that the events of two identical benches are identical.

Revision ID: 0003_bench_runs
Revises: 0002_llm_calls
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_bench_runs"
down_revision = "0002_llm_calls"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("kind", sa.String(), nullable=False, server_default="train"))
    op.create_table(
        "timings",
        sa.Column("run_id", sa.String(), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("wall_time_s", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False, server_default="{}"),
    )


def downgrade() -> None:
    raise NotImplementedError("ledgers are never downgraded")
