"""The claim's index in the claim's own order (priority descending, then oldest first), so
taking the next job reads one index entry instead of sorting the whole queue.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_jobs_claim", "jobs")
    op.create_index("ix_jobs_claim", "jobs", ["status", sa.text("priority DESC"), "seq"])


def downgrade() -> None:
    op.drop_index("ix_jobs_claim", "jobs")
    op.create_index("ix_jobs_claim", "jobs", ["status", "priority", "seq"])
