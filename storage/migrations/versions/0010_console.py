"""curators' console: role curator, one-time sign-in links, KB revisions, review marks, signals

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-07

Written by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
OUTCOMES = "'alternative', 'new_entry', 'not_covered', 'ignored'"
KINDS = (
    "'clarify_pick', 'down_then_asked', 'down_then_mentor', 'mentor_matched_entry', "
    "'escalated_no_entry'"
)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_role", type_="check")
        batch.create_check_constraint(
            "ck_users_role", sa.text("role IN ('clerk', 'mentor', 'curator', 'admin')")
        )
    op.create_table(
        "console_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_console_links"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_console_links_user_id_users", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("nonce", name="uq_console_links_nonce"),
    )
    op.create_index("ix_console_links_user_id", "console_links", ["user_id"])
    op.create_table(
        "kb_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(128), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("summary", sa.String(200), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_revisions"),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name="fk_kb_revisions_author_id_users",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_kb_revisions_entry_id_id", "kb_revisions", ["entry_id", "id"])
    op.create_table(
        "curation_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("entry_id", sa.String(128), nullable=True),
        sa.Column("revision_id", sa.Integer(), nullable=True),
        sa.Column("curator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_curation_marks"),
        sa.CheckConstraint(f"outcome IN ({OUTCOMES})", name="ck_curation_marks_outcome"),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name="fk_curation_marks_question_id_questions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["revision_id"], ["kb_revisions.id"],
            name="fk_curation_marks_revision_id_kb_revisions", ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["curator_id"], ["users.id"], name="fk_curation_marks_curator_id_users",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint("question_id", name="uq_curation_marks_question_id"),
    )
    op.create_table(
        "kb_signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.String(128), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kb_signals"),
        sa.CheckConstraint(f"kind IN ({KINDS})", name="ck_kb_signals_kind"),
        sa.ForeignKeyConstraint(
            ["question_id"], ["questions.id"], name="fk_kb_signals_question_id_questions",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("kind", "question_id", name="uq_kb_signals_kind_question_id"),
    )
    op.create_index("ix_kb_signals_created_at", "kb_signals", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_kb_signals_created_at", table_name="kb_signals")
    op.drop_table("kb_signals")
    op.drop_table("curation_marks")
    op.drop_index("ix_kb_revisions_entry_id_id", table_name="kb_revisions")
    op.drop_table("kb_revisions")
    op.drop_index("ix_console_links_user_id", table_name="console_links")
    op.drop_table("console_links")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("ck_users_role", type_="check")
        batch.create_check_constraint(
            "ck_users_role", sa.text("role IN ('clerk', 'mentor', 'admin')")
        )
