"""SQLite's search index filled behind ingest (``store.search_backlog``): a search finds an
alert from its commit on, before and after it is indexed; the index stays consistent with
the alerts through random inserts, text changes, deletes and indexing steps; the migration
goes down to 0003's triggers and up again without losing an alert from the index."""

from __future__ import annotations

import random

import pytest
from alembic import command
from sqlalchemy import delete, update

from otwatch.alerts.views import AlertFilter
from otwatch.central import alertviews as views
from otwatch.central.store import search_backlog
from otwatch.central.store.db import _MIGRATIONS, open_central_store
from otwatch.central.store.models import Alert
from tests.centralapi import add_alerts, snapshot
from tests.unit.central.store.test_derived import scan_ids, varied


@pytest.fixture
def store(tmp_path):
    s = open_central_store(f"sqlite:///{tmp_path / 'central.db'}")
    yield s
    s.close()


def pending(store) -> int:
    with store.engine.connect() as conn:
        return search_backlog.pending_count(conn)


def index_some(store, limit: int) -> int:
    with store.engine.begin() as conn:
        return search_backlog.index_pending(conn, limit)


def integrity_ok(store, *, backlog: bool = True) -> None:
    """FTS5 compares its index with the text of every alert (raises if they differ). The
    pending alerts are indexed first, in a transaction rolled back afterwards: the index
    must hold exactly the others, with their current text."""
    with store.engine.connect() as conn:
        trans = conn.begin()
        if backlog:
            search_backlog.index_pending(conn, 1_000_000)
        conn.exec_driver_sql("INSERT INTO alerts_search(alerts_search, rank) "
                             "VALUES ('integrity-check', 1)")  # fmt: skip
        trans.rollback()


def searches_equal_a_scan(store, terms=("modbus", "192.0.2.1", "Port Scan", "alpha", "zzz")):
    with store.session() as s:
        for term in terms:
            flt = AlertFilter(search=term)
            expected = scan_ids(s, flt)
            assert [a["id"] for a in views.list_alerts(s, flt, limit=1000)] == expected, term
            views._DENSE_SEARCH, dense = 0, views._DENSE_SEARCH  # the other plan
            try:
                got = [a["id"] for a in views.list_alerts(s, flt, limit=1000)]
            finally:
                views._DENSE_SEARCH = dense
            assert got == expected, term


def test_new_alerts_are_found_before_and_after_indexing(store):
    add_alerts(store, "s1", varied(60))
    assert pending(store) == 60
    searches_equal_a_scan(store)
    with store.session() as s:
        assert scan_ids(s, AlertFilter(search="modbus"))  # the data has matches
    assert index_some(store, 25) == 25 and pending(store) == 35
    searches_equal_a_scan(store)  # half from the index, half scanned
    assert index_some(store, 1000) == 35 and pending(store) == 0
    assert index_some(store, 1000) == 0
    searches_equal_a_scan(store)
    integrity_ok(store)


def test_index_stays_consistent_through_random_changes(store):
    rng = random.Random(7)
    next_id = 1
    for _step in range(40):
        action = rng.choice(("insert", "insert", "text", "status", "delete", "index"))
        if action == "insert":
            n = rng.randrange(1, 20)
            add_alerts(store, "s1", [snapshot(i, message=rng.choice(("alpha", "beta gamma")))
                                     for i in range(next_id, next_id + n)])  # fmt: skip
            next_id += n
        elif action in ("text", "status", "delete") and next_id > 1:
            picked = rng.sample(range(1, next_id), min(5, next_id - 1))
            where = (Alert.sensor == "s1", Alert.alert_id.in_(picked))
            with store.session() as s:
                if action == "text":  # a search column changes: old text out of the index
                    new = rng.choice(("alpha again", "omega", None))
                    s.execute(update(Alert).where(*where).values(message=new or "", protocol=new))
                elif action == "status":  # not a search column: nothing to re-index
                    s.execute(update(Alert).where(*where).values(status="active"))
                else:
                    s.execute(delete(Alert).where(*where))
        else:
            index_some(store, rng.randrange(1, 30))
        integrity_ok(store)
    searches_equal_a_scan(store, ("alpha", "omega", "beta", "modbus"))
    while index_some(store, 50):
        pass
    integrity_ok(store)
    searches_equal_a_scan(store, ("alpha", "omega", "beta", "modbus"))


def test_a_status_change_does_not_queue_the_alert_again(store):
    add_alerts(store, "s1", varied(10))
    index_some(store, 100)
    with store.session() as s:
        s.execute(update(Alert).values(status="closed", close_reason="manual"))
    assert pending(store) == 0


def test_downgrade_to_0003_indexes_the_backlog_and_upgrade_returns(store, tmp_path):
    add_alerts(store, "s1", varied(30))
    index_some(store, 10)
    config = _MIGRATIONS.config(store.engine)
    command.downgrade(config, "0003")
    integrity_ok(store, backlog=False)  # revision 0003 has none: everything is indexed
    add_alerts(store, "s1", [snapshot(31, message="added at 0003")])  # 0003's own triggers
    with store.engine.connect() as conn:
        names = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
    assert "alerts_search_pending" not in names and "alerts_search_ai" in names
    command.upgrade(config, "head")
    assert pending(store) == 0
    integrity_ok(store)
    searches_equal_a_scan(store, ("added at 0003", "modbus", "Port Scan"))


def test_bulk_load_helpers_leave_index_and_backlog_consistent(store):
    add_alerts(store, "s1", varied(20))
    with store.engine.begin() as conn:
        search_backlog.suspend_triggers(conn)
    add_alerts(store, "s2", varied(20, seed=3))  # nothing kept while suspended
    assert pending(store) == 20
    with store.engine.begin() as conn:
        search_backlog.resume_triggers(conn)
    assert pending(store) == 0
    integrity_ok(store)
    searches_equal_a_scan(store)
    add_alerts(store, "s3", varied(5))
    assert pending(store) == 5
