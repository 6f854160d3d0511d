"""The database-kept search index and group counts agree with the alerts themselves through
inserts, merges, central changes, deletes and a rebuild, on SQLite and PostgreSQL; the API's
queries that use them return what a plain scan returns."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from sqlalchemy import delete, func, select

from otwatch.alerts.views import AlertFilter, group_counts
from otwatch.central import alertviews as views
from otwatch.central.store import alerts as alert_store
from otwatch.central.store import derived
from otwatch.central.store.models import Alert
from otwatch.central.store.models_api import AlertCount
from otwatch.central.store.search import search_condition
from tests.centralapi import add_alerts, snapshot
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import MIN, T0

ENGINES = ("policy_violation", "anomaly", "malware")


def varied(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    return [
        snapshot(
            i,
            engine=rng.choice(ENGINES),
            severity=rng.choice(("low", "medium", "high")),
            status=rng.choice(("new", "active", "closed")),
            close_reason=None,
            name=rng.choice(("Modbus Write", "Unknown Host", "Port Scan")),
            protocol=rng.choice(("modbus", "dnp3", None)),
            source_address=f"192.0.2.{rng.randrange(1, 40)}",
            message=rng.choice(("100% of the polls", "under_score here", "Ünïcode ok", "plain")),
        )
        for i in range(1, n + 1)
    ]


def counts_table(session) -> dict[tuple, int]:
    rows = session.execute(select(AlertCount)).scalars()
    return {tuple(getattr(r, d) for d in derived.COUNT_DIMENSIONS): r.n for r in rows if r.n}


def counts_of_alerts(session) -> dict[tuple, int]:
    dims = [getattr(Alert, d) for d in derived.COUNT_DIMENSIONS]
    rows = session.execute(select(*dims, func.count()).group_by(*dims)).all()
    return {tuple(r[:-1]): r[-1] for r in rows}


@pytest.fixture
def filled(central_store):  # noqa: F811
    add_alerts(central_store, "s1", varied(60))
    add_alerts(central_store, "s2", varied(40, seed=2))
    return central_store


def test_counts_follow_inserts_merges_changes_and_deletes(filled):
    store = filled
    with store.session() as s:
        assert counts_table(s) == counts_of_alerts(s) and sum(counts_table(s).values()) == 100
    # the sensor sends newer copies: some change status/severity, most only their count
    newer = [
        {**a, "detections": 5, "status_hlc": 10, "severity_hlc": 10,
         "status": "closed" if a["id"] % 3 == 0 else a["status"],
         "severity": "high" if a["id"] % 4 == 0 else a["severity"],
         "close_reason": "manual" if a["id"] % 3 == 0 else a["close_reason"]}
        for a in varied(60)
    ]  # fmt: skip
    add_alerts(store, "s1", [*newer, snapshot(61, status="active")])
    with store.session() as s:
        assert counts_table(s) == counts_of_alerts(s) and sum(counts_table(s).values()) == 101
        alert = alert_store.get_alert(s, "s2", 3)
        alert_store.apply_central_change(s, alert, {"severity": "low"}, 1 << 60, T0)
    with store.session() as s:
        assert counts_table(s) == counts_of_alerts(s)
        s.execute(delete(Alert).where(Alert.sensor == "s2", Alert.alert_id < 20))
    with store.session() as s:
        assert counts_table(s) == counts_of_alerts(s) and sum(counts_table(s).values()) == 82
        s.execute(delete(AlertCount))
    with store.engine.begin() as conn:
        derived.rebuild(conn)
    with store.session() as s:
        assert counts_table(s) == counts_of_alerts(s)


FILTERS = [
    AlertFilter(),
    AlertFilter(statuses=("new", "active")),
    AlertFilter(severities=("high",), sensors=("s2",)),
    AlertFilter(engines=("anomaly",), sites=("plant",), zones=("z1",)),
    AlertFilter(categories=("nope",)),
    AlertFilter(protocols=("modbus",)),  # not a count column: from the alerts
    AlertFilter(since_ns=T0 + 30 * MIN),
    AlertFilter(search="modbus"),
]


@pytest.mark.parametrize("flt", FILTERS)
@pytest.mark.parametrize("by", ["engine", "name", "sensor", "severity", "site", "status"])
def test_group_counts_equal_a_count_of_the_alerts(filled, flt, by):
    with filled.session() as s:
        expected = group_counts(s, Alert, flt, by)
        assert views.group_alerts(s, flt, by) == expected
    if flt == AlertFilter() and by == "engine":
        assert sum(c for _v, c in expected) == 100


def scan_ids(session, flt: AlertFilter) -> list[str]:
    """What otwatch.alerts.views' ILIKE finds, newest first (the reference)."""
    from otwatch.alerts.views import filtered, sorted_query

    rows = session.scalars(sorted_query(Alert, filtered(Alert, flt)).limit(1000))
    return [views.central_id(a) for a in rows]


@pytest.mark.parametrize(
    "term",
    ["modbus", "MODBUS", "192.0.2.1", "100%", "under_", "ünï", "Port Scan", "dnp", "sc", "zzz"],
)
def test_search_finds_what_a_substring_scan_finds(filled, term, monkeypatch):
    flt = AlertFilter(search=term)
    with filled.session() as s:
        expected = scan_ids(s, flt)
        got = [a["id"] for a in views.list_alerts(s, flt, limit=1000)]
        if term.isascii():  # SQLite's LIKE folds ASCII only; the index folds Unicode too
            assert got == expected
        else:
            assert set(expected) <= set(got)
        # the index plan and the scan plan agree whatever the number of matches (up to
        # SQLite's ASCII-only case folding in the scan)
        monkeypatch.setattr(views, "_DENSE_SEARCH", 0)
        dense = [a["id"] for a in views.list_alerts(s, flt, limit=1000)]
        assert dense == got if term.isascii() else set(dense) <= set(got)
    if term in ("modbus", "192.0.2.1", "100%", "under_", "dnp", "sc"):
        assert got  # the data has these: an empty answer would prove nothing


def test_search_uses_the_index(filled):
    with filled.session() as s:
        condition = search_condition(s, "modbus")
        assert condition is not None
        assert search_condition(s, "ab") is None  # too short for trigrams
        sql = str(condition.compile(dialect=s.get_bind().dialect))
        assert (
            ("alerts_search" in sql) if s.get_bind().dialect.name == "sqlite" else ("ILIKE" in sql)
        )


@pytest.mark.parametrize("sort", ["-severity", "severity"])
def test_sort_by_severity_uses_the_rank(filled, sort):
    rank = {"low": 0, "medium": 1, "high": 2}
    with filled.session() as s:
        rows = views.list_alerts(s, AlertFilter(), sort=sort, limit=1000)
        ranks = [rank[r["severity"]] for r in rows]
        assert ranks == sorted(ranks, reverse=sort.startswith("-")) and len(rows) == 100
        assert {a.severity_rank for a in s.scalars(select(Alert))} == {0, 1, 2}


def test_a_filter_on_unified_members_still_counts_right(filled):
    """Members of a unified alert are subtracted from the counts (see alertviews)."""
    from otwatch.central.store.models_api import AlertMember

    with filled.session() as s:
        before = dict(views.group_alerts(s, AlertFilter(), "sensor"))
        member = alert_store.get_alert(s, "s2", 1)
        primary = alert_store.get_alert(s, "s1", 1)
        s.add(AlertMember(alert_pk=member.id, primary_pk=primary.id, sensor="s2", unified_ns=T0))
    with filled.session() as s:
        after = dict(views.group_alerts(s, AlertFilter(), "sensor"))
        assert after == {**before, "s2": before["s2"] - 1}
        only_s2 = replace(AlertFilter(), sensors=("s2",))
        assert dict(views.group_alerts(s, only_s2, "sensor"))["s2"] == before["s2"] - 1
