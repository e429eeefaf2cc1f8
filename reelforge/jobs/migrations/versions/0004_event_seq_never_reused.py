"""`job_events.seq` never reused on SQLite (AUTOINCREMENT).

Without it SQLite gives a new row the largest seq + 1, so deleting the newest events (a
job's delete removes its events, then writes its `deleted` event) hands a seq a consumer has
already passed to a new event, which that consumer then never sees. PostgreSQL's sequences
never go back; nothing changes there.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "job_events", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "job_events", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
