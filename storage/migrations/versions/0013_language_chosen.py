"""users.language_chosen: whether the clerk chose the language (onboarding or /jezik) or it is
only the client's hint; a reply follows the question's script until the clerk chooses

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

Written by hand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("language_chosen", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # onboarding starts with the choice of script, so an onboarded clerk has chosen
    op.execute(sa.text("UPDATE users SET language_chosen = onboarded"))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language_chosen")
