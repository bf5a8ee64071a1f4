"""Status views: each run's latest `skillopt status` view, written by the writer in the same
transaction as the events it describes and keyed by the last of them (seq and hash). A derived
cache outside the hash chain: `status` answers from it without folding the run, only while
it describes the run's last event; `verify` re-derives it.

Revision ID: 0004_status_views
Revises: 0003_bench_runs
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_status_views"
down_revision = "0003_bench_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "status_views",
        sa.Column("run_id", sa.String(), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False),  # the last event the view describes
        sa.Column("hash", sa.String(64), nullable=False),  # and its hash
        sa.Column("format", sa.Integer(), nullable=False),  # the view's shape (STATUS_FORMAT)
        sa.Column("view", sa.Text(), nullable=False),  # JSON
    )


def downgrade() -> None:
    raise NotImplementedError("ledgers are never downgraded")
