"""operations: audit trail, privacy

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

Written by hand. Constraint names follow storage.models.NAMING_CONVENTION.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_channel", sa.String(16), nullable=True),
        sa.Column("actor_external_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=True),
        sa.Column("details", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"],
            name="fk_audit_log_actor_user_id_users", ondelete="SET NULL",
        ),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"])
    op.create_index("ix_audit_log_actor_user_id_at", "audit_log", ["actor_user_id", "at"])

    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_privacy_requests"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name="fk_privacy_requests_user_id_users", ondelete="SET NULL",
        ),
        sa.CheckConstraint("kind IN ('export', 'deletion')", name="ck_privacy_requests_kind"),
    )
    op.create_index(
        "ix_privacy_requests_user_id_created_at", "privacy_requests", ["user_id", "created_at"]
    )
    op.create_index(
        "ix_privacy_requests_kind_created_at", "privacy_requests", ["kind", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_privacy_requests_kind_created_at", table_name="privacy_requests")
    op.drop_index("ix_privacy_requests_user_id_created_at", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    op.drop_index("ix_audit_log_actor_user_id_at", table_name="audit_log")
    op.drop_index("ix_audit_log_action_at", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
