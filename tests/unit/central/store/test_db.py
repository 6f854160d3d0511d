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


# the tactics sort index is an expression: Alembic cannot compare those (and says so)
@pytest.mark.filterwarnings("ignore:.*expression-based index")
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


def test_central_sqlite_commits_durably_with_a_large_page_cache(tmp_path):
    """Central acknowledges what it committed, and the sensor then deletes it: FULL, not
    NORMAL (the sensor's store), and a page cache for a dozen alert indexes."""
    from otwatch.agent.store.db import open_store
    from otwatch.dbcommon import CENTRAL_CACHE_KIB

    store = open_central_store(f"sqlite:///{tmp_path / 'central.db'}")
    sensor = open_store(tmp_path / "sensor")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -CENTRAL_CACHE_KIB
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        with sensor.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        store.close()
        sensor.close()


def test_head_revision_read_from_the_files_equals_alembics():
    from otwatch.agent.store.db import _MIGRATIONS as sensor_tree
    from otwatch.central.store.db import _MIGRATIONS as central_tree

    for tree in (sensor_tree, central_tree):
        assert tree.head() == tree.alembic_head()


def test_head_revision_leaves_branches_to_alembic(tmp_path, monkeypatch):
    from otwatch.dbcommon import Migrations

    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision: str = "a"\ndown_revision: str | None = None\n')
    (versions / "b.py").write_text('revision: str = "b"\ndown_revision: str | None = "a"\n')
    tree = Migrations(tmp_path)
    assert tree.head() == "b"
    (versions / "c.py").write_text("revision = 'c'\ndown_revision = 'a'\n")  # two heads
    monkeypatch.setattr(Migrations, "alembic_head", lambda self: "alembic decides")
    assert tree.head() == "alembic decides"
