"""``open_for_reading``: reads without write access, never writes, never tears.

Real permission boundaries (a reader who may not write) are tested with real Unix users in
tests/integration/deploy/test_roles.py; here the store runs as the test user.
"""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy import func, select, text

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.db import (
    DB_FILENAME,
    StoreError,
    current_revision,
    head_revision,
    migrate,
    open_store,
    sqlite_engine,
)
from otwatch.agent.store.models import Alert
from otwatch.agent.store.readonly import ReadOnlyStore, open_for_reading
from otwatch.alerts.catalog import load_catalog
from tests.factories import T0, detection


def seed(data_dir, count: int = 2) -> None:
    store = open_store(data_dir)
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    for i in range(count):
        manager.observe(detection(src=f"192.0.2.{i + 1}", ts_ns=T0 + i))
    manager.flush()
    store.close()


def count_alerts(store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(Alert))


def test_closed_database_is_read_immutably_and_never_written(tmp_path):
    seed(tmp_path)
    assert not (tmp_path / f"{DB_FILENAME}-wal").exists()
    store = open_for_reading(tmp_path)
    assert isinstance(store, ReadOnlyStore)
    assert count_alerts(store) == 2
    with pytest.raises(StoreError, match="readonly"), store.session() as session:
        session.execute(text("DELETE FROM alerts"))
    assert count_alerts(store) == 2
    assert not (tmp_path / f"{DB_FILENAME}-wal").exists()
    store.close()


def test_reader_sees_commits_of_a_running_writer(tmp_path):
    seed(tmp_path, 1)
    writer = sqlite3.connect(tmp_path / DB_FILENAME)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE alerts SET severity='low'")
    writer.commit()
    assert (tmp_path / f"{DB_FILENAME}-wal").exists()
    store = open_for_reading(tmp_path)
    with store.session() as session:
        assert session.scalar(select(Alert.severity)) == "low"
    writer.close()
    store.close()


def test_a_change_during_an_unlocked_read_fails_the_read(tmp_path):
    seed(tmp_path, 1)
    store = open_for_reading(tmp_path)
    db = tmp_path / DB_FILENAME
    with (
        pytest.raises(StoreError, match="changed while it was read"),
        store.session() as session,
    ):
        session.scalar(select(func.count()).select_from(Alert))
        st = db.stat()
        os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # as a checkpoint would
    store.close()


def test_a_read_never_creates_a_missing_or_empty_database(tmp_path):
    with pytest.raises(StoreError, match="no sensor database in .*fresh"):
        open_for_reading(tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
    (tmp_path / DB_FILENAME).touch()
    with pytest.raises(StoreError, match="is empty \\(0 bytes\\).*will not re-create it"):
        open_for_reading(tmp_path)
    assert (tmp_path / DB_FILENAME).stat().st_size == 0


def test_outdated_schema_is_upgraded_when_this_user_may(tmp_path):
    engine = sqlite_engine(tmp_path / DB_FILENAME)
    migrate(engine, "0001")
    engine.dispose()
    store = open_for_reading(tmp_path)
    assert not isinstance(store, ReadOnlyStore)
    assert current_revision(store.engine) == head_revision()
    store.close()


@pytest.mark.parametrize(
    ("dir_mode", "db_mode"), [(0o2770, 0o660), (0o755, 0o644), (0o700, 0o600), (0o1777, 0o664)]
)
def test_new_database_file_mode_follows_the_directory(tmp_path, dir_mode, db_mode):
    data = tmp_path / "d"
    data.mkdir()
    data.chmod(dir_mode)
    old = os.umask(0o077)
    try:
        open_store(data).close()
    finally:
        os.umask(old)
    assert (data / DB_FILENAME).stat().st_mode & 0o777 == db_mode
