"""incidents: a service that does not work, declared by a mentor, and the clerks told about it

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Written by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("declared_by", sa.Integer(), nullable=True),
        sa.Column("declared_at", TS, nullable=False),
        sa.Column("closed_by", sa.Integer(), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        sa.ForeignKeyConstraint(
            ["declared_by"], ["users.id"], name="fk_incidents_declared_by_users",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["closed_by"], ["users.id"], name="fk_incidents_closed_by_users", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_incidents_service_closed_at", "incidents", ["service", "closed_at"])
    op.create_index("ix_incidents_declared_at", "incidents", ["declared_at"])
    op.create_table(
        "incident_clerks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incident_clerks"),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name="fk_incident_clerks_incident_id_incidents",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_incident_clerks_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["mentor_requests.id"],
            name="fk_incident_clerks_request_id_mentor_requests", ondelete="SET NULL",
        ),
        sa.UniqueConstraint(
            "incident_id", "user_id", name="uq_incident_clerks_incident_id_user_id"
        ),
    )


def downgrade() -> None:
    op.drop_table("incident_clerks")
    op.drop_index("ix_incidents_declared_at", table_name="incidents")
    op.drop_index("ix_incidents_service_closed_at", table_name="incidents")
    op.drop_table("incidents")
