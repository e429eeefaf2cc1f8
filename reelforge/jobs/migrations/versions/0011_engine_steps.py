"""`jobs.step` and `jobs.steps`: the engine's denoising step of the running job and how
many it takes, so that clients (the studio) can say "step k of n".

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("step", sa.Integer))
        batch.add_column(sa.Column("steps", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("steps")
        batch.drop_column("step")
