"""Alembic's entry point. `schema.migrate` hands over an open connection inside its own
transaction (and lock), so migrations never open connections of their own."""

from __future__ import annotations

from alembic import context

from reelforge.jobs.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
