"""Alembic migrations of the job database; run by `reelforge.jobs.schema.migrate`."""
