"""Scale-out: fair share between tenants, and what each worker is doing.

- `ix_jobs_tenant_claim` (status, tenant, priority DESC, seq): the head of one tenant's queue
  is one index read, so the fair-share claim probes each waiting tenant instead of sorting
  the queue.
- `tenant_claims`: when each tenant last had a job claimed; among tenants with as many
  running jobs, the one served longest ago goes first (round robin, also with one worker).
- `workers.device`, `workers.state` (`idle`, `running`, `draining`) and
  `workers.current_job_id`, for `/healthz`.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_tenant_claim", "jobs", ["status", "tenant", sa.text("priority DESC"), "seq"]
    )
    op.create_table(
        "tenant_claims",
        sa.Column("tenant", sa.String(128), primary_key=True),
        sa.Column("last_claimed_at", sa.Float, nullable=False),
    )
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("device", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="idle"))
        batch.add_column(sa.Column("current_job_id", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("current_job_id")
        batch.drop_column("state")
        batch.drop_column("device")
    op.drop_table("tenant_claims")
    op.drop_index("ix_jobs_tenant_claim", "jobs")
