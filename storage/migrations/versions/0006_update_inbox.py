"""update inbox: an update is kept while it is handled, so a crash does not lose it

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28

Written by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("processed_updates") as batch:
        batch.add_column(sa.Column("payload", JSON, nullable=True))
        batch.add_column(sa.Column("done_at", TS, nullable=True))
        batch.add_column(
            sa.Column("replays", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("processed_updates") as batch:
        batch.drop_column("replays")
        batch.drop_column("done_at")
        batch.drop_column("payload")
