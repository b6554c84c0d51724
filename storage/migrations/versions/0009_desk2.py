"""mentor desk: followers of a request, hand-over, call-back contact, drafts' alternatives

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08

Written by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "mentor_followers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=True),
        sa.Column("source_key", sa.String(100), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("municipality", sa.String(128), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("own_request_id", sa.Integer(), nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mentor_followers"),
        sa.CheckConstraint(
            "state IN ('following', 'own')", name="ck_mentor_followers_state"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["mentor_requests.id"],
            name="fk_mentor_followers_request_id_mentor_requests", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_mentor_followers_user_id_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name="fk_mentor_followers_question_id_questions",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["own_request_id"], ["mentor_requests.id"],
            name="fk_mentor_followers_own_request_id_mentor_requests", ondelete="SET NULL",
        ),
        sa.UniqueConstraint("request_id", "user_id", name="uq_mentor_followers_request_id_user_id"),
        sa.UniqueConstraint("source_key", name="uq_mentor_followers_source_key"),
    )
    op.create_index(
        "ix_mentor_followers_user_id_created_at", "mentor_followers", ["user_id", "created_at"]
    )
    with op.batch_alter_table("mentor_requests") as batch:
        batch.add_column(sa.Column("handed_to", sa.String(16), nullable=True))
        batch.add_column(sa.Column("handed_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("handed_at", TS, nullable=True))
        batch.add_column(sa.Column("handover_due", TS, nullable=True))
        batch.add_column(sa.Column("handover_note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("callback_contact", sa.Text(), nullable=True))
        batch.create_foreign_key(
            "fk_mentor_requests_handed_by_users", "users", ["handed_by"], ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("kb_drafts") as batch:
        batch.add_column(
            sa.Column("alternatives", JSON, nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("kb_drafts") as batch:
        batch.drop_column("alternatives")
    with op.batch_alter_table("mentor_requests") as batch:
        batch.drop_constraint("fk_mentor_requests_handed_by_users", type_="foreignkey")
        batch.drop_column("callback_contact")
        batch.drop_column("handover_note")
        batch.drop_column("handover_due")
        batch.drop_column("handed_at")
        batch.drop_column("handed_by")
        batch.drop_column("handed_to")
    op.drop_index("ix_mentor_followers_user_id_created_at", table_name="mentor_followers")
    op.drop_table("mentor_followers")
