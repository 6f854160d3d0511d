"""The sensor schema: migrations match the models, and upgrades keep existing data."""

from __future__ import annotations

import sqlite3

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from otwatch.agent.store import db
from otwatch.agent.store.schema import Base
from otwatch.dbcommon import BUSY_TIMEOUT_MS


def test_migrated_schema_equals_the_models(tmp_path):
    store = db.open_store(tmp_path)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    store.close()
    assert diff == []


def test_upgrade_from_first_revision_keeps_alerts_and_audit(tmp_path):
    engine = db.sqlite_engine(tmp_path / db.DB_FILENAME)
    db.migrate(engine, "0001")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO alerts (type_id, name, engine, category, severity, status, dedup_key,"
            " first_detection_ns, last_detection_ns, last_activity_ns, detections, sensor, site,"
            " zone, tactics, learnable, mutable, message, remediation, fields, status_hlc,"
            " severity_hlc) VALUES ('port_scan_detected', 'Port Scan Detected', 'anomaly',"
            " 'Scan', 'high', 'new', 'k1', 1, 2, 3, 7, 's1', '', '', '[]', 1, 1, 'm', '[]',"
            " '{}', 0, 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO audit_log (alert_id, ts_ns, actor, origin, action, detail)"
            " VALUES (1, 3, 'ana', 'sensor', 'created', '{}')"
        )
    engine.dispose()
    store = db.open_store(tmp_path)
    assert db.current_revision(store.engine) == db.head_revision()
    with store.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT name, detections FROM alerts").one()
        audit = conn.exec_driver_sql("SELECT actor FROM audit_log").scalar()
    store.close()
    assert tuple(row) == ("Port Scan Detected", 7)
    assert audit == "ana"


def test_open_store_is_idempotent_and_sets_wal(tmp_path):
    db.open_store(tmp_path).close()
    store = db.open_store(tmp_path)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS
    store.close()


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / db.DB_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(db.StoreError, match="cannot open database"):
        db.open_store(tmp_path)


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(db.StoreError, match="cannot create data directory"):
        db.open_store(path)


def test_sqlite_version_supports_wal():
    assert sqlite3.sqlite_version_info >= (3, 7, 0)
