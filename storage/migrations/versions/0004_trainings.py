"""trainings, registrations, broadcasts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AUDIENCES = "'all', 'municipalities', 'service', 'role'"


def upgrade() -> None:
    op.create_table(
        "trainings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("link", sa.String(500), nullable=True),
        sa.Column("address", sa.String(300), nullable=True),
        sa.Column("capacity", sa.Integer(), nullable=True),
        sa.Column("audience_kind", sa.String(16), nullable=False),
        sa.Column("audience_values", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trainings"),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_trainings_created_by_users", ondelete="SET NULL"
        ),
        sa.CheckConstraint("status IN ('active', 'cancelled')", name="ck_trainings_status"),
        sa.CheckConstraint(f"audience_kind IN ({AUDIENCES})", name="ck_trainings_audience_kind"),
    )
    op.create_index("ix_trainings_status_starts_at", "trainings", ["status", "starts_at"])

    op.create_table(
        "training_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("training_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_registrations"),
        sa.ForeignKeyConstraint(
            ["training_id"], ["trainings.id"],
            name="fk_training_registrations_training_id_trainings", ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"],
            name="fk_training_registrations_user_id_users", ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "training_id", "user_id", name="uq_training_registrations_training_id_user_id"
        ),
        sa.CheckConstraint(
            "status IN ('registered', 'waitlisted', 'cancelled')",
            name="ck_training_registrations_status",
        ),
    )
    op.create_index(
        "ix_training_registrations_training_id_status_position",
        "training_registrations", ["training_id", "status", "position"],
    )
    op.create_index("ix_training_registrations_user_id", "training_registrations", ["user_id"])

    op.create_table(
        "broadcasts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("audience_kind", sa.String(16), nullable=False),
        sa.Column("audience_values", JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("admin_channel", sa.String(16), nullable=True),
        sa.Column("admin_chat_id", sa.String(64), nullable=True),
        sa.Column("progress_message_id", sa.String(64), nullable=True),
        sa.Column("queued_up_to", sa.Integer(), nullable=False),
        sa.Column("queued_all", sa.Boolean(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("blocked", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("cancelled", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_broadcasts"),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name="fk_broadcasts_created_by_users", ondelete="SET NULL"
        ),
        sa.CheckConstraint(
            "state IN ('draft', 'running', 'cancelled', 'done')", name="ck_broadcasts_state"
        ),
        sa.CheckConstraint(f"audience_kind IN ({AUDIENCES})", name="ck_broadcasts_audience_kind"),
    )
    op.create_index("ix_broadcasts_state", "broadcasts", ["state"])


def downgrade() -> None:
    op.drop_index("ix_broadcasts_state", table_name="broadcasts")
    op.drop_table("broadcasts")
    op.drop_index("ix_training_registrations_user_id", table_name="training_registrations")
    op.drop_index(
        "ix_training_registrations_training_id_status_position",
        table_name="training_registrations",
    )
    op.drop_table("training_registrations")
    op.drop_index("ix_trainings_status_starts_at", table_name="trainings")
    op.drop_table("trainings")
