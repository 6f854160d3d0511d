"""Central store: URLs, migrations identical to the models, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from otwatch.central.store import derived
from otwatch.central.store.db import (
    CentralStoreError,
    current_revision,
    head_revision,
    normalize_url,
    open_central_store,
)
from otwatch.central.store.schema import Base
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401


def test_migrated_schema_matches_the_models(central_store):  # noqa: F811
    assert current_revision(central_store.engine) == head_revision()
    with central_store.engine.connect() as conn:
        # the search index and trigger-kept objects are the database's own (store.derived)
        context = MigrationContext.configure(conn, opts={"include_name": derived.include_name})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_reopening_is_a_no_op(central_url):  # noqa: F811
    open_central_store(central_url).close()
    store = open_central_store(central_url)
    assert current_revision(store.engine) == head_revision()
    store.close()


def test_urls():
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("/tmp/x/central.db") == "sqlite:////tmp/x/central.db"
    with pytest.raises(CentralStoreError):
        normalize_url("::not a url::/x://")


def test_unusable_database_is_one_clear_error(tmp_path):
    bad = tmp_path / "central.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CentralStoreError, match="cannot open central database"):
        open_central_store(str(bad))
