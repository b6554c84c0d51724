"""canned replies: mentors' reusable answers with {ime}, {opstina}, {usluga}

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

Written by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_canned_replies"),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_canned_replies_created_by_users",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("key", name="uq_canned_replies_key"),
    )


def downgrade() -> None:
    op.drop_table("canned_replies")
