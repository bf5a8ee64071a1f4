"""The call journal records why each model reply ended (`finish_reason`): stop, length (cut at
max_tokens), tool_use, content_filter, as the provider said it; NULL for calls journaled
before, and for backends that do not say.

Revision ID: 0005_finish_reason
Revises: 0004_status_views
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_finish_reason"
down_revision = "0004_status_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.add_column(sa.Column("finish_reason", sa.String(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("ledgers are never downgraded")
