"""`generation_totals`: generations created and finished, counted when it happens, so the
`/metrics` counters never go down when a job is deleted or swept. Each count is spread over
a few shards (a random one per write), so concurrent creates on several replicas do not all
wait for one row's lock. Filled from the jobs the table holds now.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "generation_totals",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("dialect", sa.String(32), primary_key=True),
        sa.Column("outcome", sa.String(16), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO generation_totals (model, dialect, outcome, shard, count) "
        "SELECT model, dialect, 'created', 0, COUNT(*) FROM jobs GROUP BY model, dialect"
    )
    op.execute(
        "INSERT INTO generation_totals (model, dialect, outcome, shard, count) "
        "SELECT model, dialect, status, 0, COUNT(*) FROM jobs "
        "WHERE status IN ('succeeded', 'failed', 'canceled') GROUP BY model, dialect, status"
    )


def downgrade() -> None:
    op.drop_table("generation_totals")
