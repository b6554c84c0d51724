"""implementation roadmaps: participating municipalities, step states and their trail;
the roadmap step of a question and of a "Zapeli smo" mentor request

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Written by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
STATUSES = "status IN ('not_started', 'in_progress', 'pending', 'done', 'blocked')"


def upgrade() -> None:
    op.create_table(
        "roadmap_municipalities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(128), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("mentor_user_id", sa.Integer(), nullable=True),
        sa.Column("added_by", sa.Integer(), nullable=True),
        sa.Column("added_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_roadmap_municipalities"),
        sa.ForeignKeyConstraint(
            ["mentor_user_id"], ["users.id"],
            name="fk_roadmap_municipalities_mentor_user_id_users", ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["added_by"], ["users.id"],
            name="fk_roadmap_municipalities_added_by_users", ondelete="SET NULL",
        ),
        sa.UniqueConstraint("municipality", name="uq_roadmap_municipalities_municipality"),
    )
    op.create_table(
        "roadmap_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(128), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_roadmap_steps"),
        sa.ForeignKeyConstraint(
            ["updated_by"], ["users.id"], name="fk_roadmap_steps_updated_by_users",
            ondelete="SET NULL",
        ),
        sa.UniqueConstraint(
            "municipality", "service", "step",
            name="uq_roadmap_steps_municipality_service_step",
        ),
        sa.CheckConstraint(STATUSES, name="ck_roadmap_steps_status"),
    )
    op.create_table(
        "roadmap_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("municipality", sa.String(128), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("old_status", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_roadmap_events"),
        sa.ForeignKeyConstraint(
            ["actor_user_id"], ["users.id"], name="fk_roadmap_events_actor_user_id_users",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["mentor_requests.id"],
            name="fk_roadmap_events_request_id_mentor_requests", ondelete="SET NULL",
        ),
        sa.CheckConstraint(STATUSES, name="ck_roadmap_events_status"),
    )
    op.create_index("ix_roadmap_events_municipality_at", "roadmap_events", ["municipality", "at"])
    op.create_index("ix_roadmap_events_at", "roadmap_events", ["at"])
    with op.batch_alter_table("questions") as batch:
        batch.add_column(sa.Column("roadmap_step", sa.String(64), nullable=True))
    with op.batch_alter_table("mentor_requests") as batch:
        batch.add_column(sa.Column("roadmap_step", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mentor_requests") as batch:
        batch.drop_column("roadmap_step")
    with op.batch_alter_table("questions") as batch:
        batch.drop_column("roadmap_step")
    op.drop_index("ix_roadmap_events_at", table_name="roadmap_events")
    op.drop_index("ix_roadmap_events_municipality_at", table_name="roadmap_events")
    op.drop_table("roadmap_events")
    op.drop_table("roadmap_steps")
    op.drop_table("roadmap_municipalities")
