"""training attendance and feedback, materials link (issue #16: programme report)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Written by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("trainings") as batch:
        batch.add_column(sa.Column("materials_link", sa.String(500), nullable=True))
    with op.batch_alter_table("training_registrations") as batch:
        batch.add_column(sa.Column("attended_at", TS, nullable=True))
        batch.add_column(sa.Column("attendance_marked_by", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("comment", sa.Text(), nullable=True))
        batch.add_column(sa.Column("rated_at", TS, nullable=True))
        batch.create_foreign_key(
            "fk_training_registrations_attendance_marked_by_users", "users",
            ["attendance_marked_by"], ["id"], ondelete="SET NULL",
        )
        batch.create_check_constraint(
            "ck_training_registrations_rating", "rating IS NULL OR (rating >= 1 AND rating <= 5)"
        )


def downgrade() -> None:
    with op.batch_alter_table("training_registrations") as batch:
        batch.drop_constraint("ck_training_registrations_rating", type_="check")
        batch.drop_constraint(
            "fk_training_registrations_attendance_marked_by_users", type_="foreignkey"
        )
        for column in ("rated_at", "comment", "rating", "attendance_marked_by", "attended_at"):
            batch.drop_column(column)
    with op.batch_alter_table("trainings") as batch:
        batch.drop_column("materials_link")
