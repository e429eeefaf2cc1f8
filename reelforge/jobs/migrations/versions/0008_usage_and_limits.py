"""Quotas, rate limits and usage.

- `jobs.video_seconds` (the clip's length, written at create) and `jobs.engine_seconds` (the
  engine's time, written when it succeeds), so a tenant's daily seconds and usage are sums
  over an index, not parses of each job's JSON. Existing jobs get 0 and NULL.
- `ix_jobs_tenant_created` (tenant, created_at): a tenant's jobs of a day.
- `rate_windows`: requests per tenant per minute, shared by every replica.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("video_seconds", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("engine_seconds", sa.Float))
    op.create_index("ix_jobs_tenant_created", "jobs", ["tenant", "created_at"])
    op.create_table(
        "rate_windows",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("minute", sa.Integer, primary_key=True),
        sa.Column("requests", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
    op.drop_index("ix_jobs_tenant_created", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("engine_seconds")
        batch.drop_column("video_seconds")
