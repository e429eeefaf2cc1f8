"""`jobs.external_id`: a client's own name for a job (Kling's `external_task_id`), unique
per tenant (NULLs never collide, on SQLite and PostgreSQL alike).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("external_id", sa.String(255)))
    op.create_index("ix_jobs_tenant_external_id", "jobs", ["tenant", "external_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_jobs_tenant_external_id", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("external_id")
