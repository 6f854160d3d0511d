"""The sync daemon's sensor table: migration 0005 creates exactly what the model declares."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from otwatch.agent.store.schema import Base


def test_migration_matches_the_model(store):
    with store.engine.connect() as conn:
        assert "sync_applied_commands" in inspect(conn).get_table_names()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "sync_applied_commands" in repr(d)] == []
