"""Each journaled call carries a digest of its own row (`digest`: sha256 of the row's fields in
canonical JSON), written with it; `skillopt verify` recomputes it, so a row edited after it was
written (a reply swapped, tokens or status changed) is named even when no event refers to it
(failed attempts). NULL for calls journaled before this revision.

Revision ID: 0006_call_digests
Revises: 0005_finish_reason
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_call_digests"
down_revision = "0005_finish_reason"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("llm_calls") as batch:
        batch.add_column(sa.Column("digest", sa.String(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("ledgers are never downgraded")
