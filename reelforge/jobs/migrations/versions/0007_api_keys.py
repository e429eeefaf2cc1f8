"""Managed API keys and the audit log.

- `api_keys`: one row per key; the secret is stored only as its SHA-256 (`secret_hash`),
  found by the key's public id, which the secret carries (`rf_<id>_<random>`). Scopes and
  limits per key; `revoked_at` ends it; `updated_at` lets every replica notice a change.
- `audit_log`: who created, rotated or revoked a key, or used the admin scope; when and
  from where.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("max_concurrent", sa.Integer),
        sa.Column("max_queued", sa.Integer),
        sa.Column("daily_video_seconds", sa.Float),
        sa.Column("rate_per_minute", sa.Integer),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
        sa.Column("last_used_at", sa.Float),
    )
    op.create_index("ix_api_keys_updated_at", "api_keys", ["updated_at"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(128)),
        sa.Column("source", sa.String(255), nullable=False),
        sa.Column("detail", sa.Text),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", "audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_api_keys_updated_at", "api_keys")
    op.drop_table("api_keys")
