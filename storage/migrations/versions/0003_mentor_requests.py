"""mentor queue: requests, messages, roles audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

Written by hand. Constraint names follow storage.models.NAMING_CONVENTION.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "mentor_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=True),
        sa.Column("source_key", sa.String(100), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("municipality", sa.String(128), nullable=True),
        sa.Column("service", sa.String(32), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("attachments", JSON, nullable=False),
        sa.Column("best_guess", sa.String(128), nullable=True),
        sa.Column("best_guess_score", sa.Float(), nullable=True),
        sa.Column("card_chat_id", sa.String(64), nullable=True),
        sa.Column("card_message_id", sa.Integer(), nullable=True),
        sa.Column("claimed_by", sa.Integer(), nullable=True),
        sa.Column("answered_by", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("first_answer_at", TS, nullable=True),
        sa.Column("last_answer_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_reason", sa.String(16), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mentor_requests"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_mentor_requests_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"],
            name="fk_mentor_requests_question_id_questions", ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["claimed_by"], ["users.id"],
            name="fk_mentor_requests_claimed_by_users", ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["answered_by"], ["users.id"],
            name="fk_mentor_requests_answered_by_users", ondelete="SET NULL",
        ),
        sa.UniqueConstraint("source_key", name="uq_mentor_requests_source_key"),
        sa.CheckConstraint(
            "state IN ('new', 'claimed', 'answered', 'closed')", name="ck_mentor_requests_state"
        ),
        sa.CheckConstraint(
            "rating IS NULL OR (rating >= 1 AND rating <= 5)", name="ck_mentor_requests_rating"
        ),
    )
    op.create_index(
        "ix_mentor_requests_state_created_at", "mentor_requests", ["state", "created_at"]
    )
    op.create_index(
        "ix_mentor_requests_user_id_created_at", "mentor_requests", ["user_id", "created_at"]
    )
    op.create_index(
        "ix_mentor_requests_claimed_by_state", "mentor_requests", ["claimed_by", "state"]
    )
    op.create_index("ix_mentor_requests_created_at", "mentor_requests", ["created_at"])

    op.create_table(
        "mentor_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(8), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("attachments", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mentor_messages"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["mentor_requests.id"],
            name="fk_mentor_messages_request_id_mentor_requests", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_mentor_messages_user_id_users", ondelete="SET NULL"
        ),
        sa.CheckConstraint("author IN ('clerk', 'mentor')", name="ck_mentor_messages_author"),
    )
    op.create_index(
        "ix_mentor_messages_request_id_created_at", "mentor_messages", ["request_id", "created_at"]
    )

    op.create_table(
        "role_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("old_role", sa.String(16), nullable=False),
        sa.Column("new_role", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_role_changes"),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name="fk_role_changes_actor_id_users", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["users.id"], name="fk_role_changes_target_id_users",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_role_changes_target_id_created_at", "role_changes", ["target_id", "created_at"]
    )

    op.create_table(
        "kb_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("service", sa.String(32), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("exported_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_kb_drafts"),
        sa.ForeignKeyConstraint(
            ["request_id"], ["mentor_requests.id"],
            name="fk_kb_drafts_request_id_mentor_requests", ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_kb_drafts_created_by_users", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("request_id", name="uq_kb_drafts_request_id"),
    )
    op.create_index("ix_kb_drafts_created_at", "kb_drafts", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_kb_drafts_created_at", table_name="kb_drafts")
    op.drop_table("kb_drafts")
    op.drop_index("ix_role_changes_target_id_created_at", table_name="role_changes")
    op.drop_table("role_changes")
    op.drop_index("ix_mentor_messages_request_id_created_at", table_name="mentor_messages")
    op.drop_table("mentor_messages")
    op.drop_index("ix_mentor_requests_created_at", table_name="mentor_requests")
    op.drop_index("ix_mentor_requests_claimed_by_state", table_name="mentor_requests")
    op.drop_index("ix_mentor_requests_user_id_created_at", table_name="mentor_requests")
    op.drop_index("ix_mentor_requests_state_created_at", table_name="mentor_requests")
    op.drop_table("mentor_requests")
