"""`workers.gpu_memory_bytes`: the GPU memory a worker's process holds (torch's allocator),
written by its heartbeat, for `/metrics` and `/healthz`; NULL for a CPU worker.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("gpu_memory_bytes", sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("gpu_memory_bytes")
