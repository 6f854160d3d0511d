"""The SQL merge of central's upsert agrees with the Python merge rule, on both databases."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from otwatch.central.store.alerts import revert_field, upsert_alerts
from otwatch.central.store.models import Alert
from otwatch.sync.protocol.merge import merge_alert
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401

BASE = {
    "sensor": "s1",
    "alert_id": 1,
    "type_id": "t",
    "name": "n",
    "engine": "policy_violation",
    "category": "c",
    "dedup_key": "k",
    "source_address": None,
    "destination_address": None,
    "source_mac": None,
    "destination_mac": None,
    "protocol": None,
    "site": "",
    "zone": "",
    "tactics": [],
    "learnable": True,
    "mutable": False,
    "message": "m",
    "remediation": [],
    "fields": {},
    "received_ns": 0,
}
MERGED = (
    "status",
    "close_reason",
    "status_hlc",
    "status_origin",
    "severity",
    "severity_hlc",
    "severity_origin",
    "detections",
    "first_detection_ns",
    "last_detection_ns",
)

copies = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["new", "active", "closed"]),
        "close_reason": st.sampled_from([None, "manual", "learned", "muted"]),
        "status_hlc": st.integers(0, 3),
        "status_origin": st.sampled_from(["sensor", "central"]),
        "severity": st.sampled_from(["low", "medium", "high"]),
        "severity_hlc": st.integers(0, 3),
        "severity_origin": st.sampled_from(["sensor", "central"]),
        "detections": st.integers(1, 9),
        "first_detection_ns": st.integers(0, 9),
        "last_detection_ns": st.integers(10, 19),
        "last_activity_ns": st.integers(10, 19),
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(copies, min_size=1, max_size=5), st.booleans())
def test_sql_merge_equals_python_merge(central_store, rows, one_statement):  # noqa: F811
    rows = [{**BASE, **r} for r in rows]
    with central_store.session() as s:
        s.execute(delete(Alert))
    if one_statement:
        with central_store.session() as s:
            upsert_alerts(s, rows)
    else:
        for row in rows:
            with central_store.session() as s:
                upsert_alerts(s, [row])
    expected = None
    for row in rows:
        expected = merge_alert(expected, row)
    with central_store.session() as s:
        [alert] = s.scalars(select(Alert))
        assert {k: getattr(alert, k) for k in MERGED} == {k: expected[k] for k in MERGED}


def test_revert_only_while_the_field_holds_the_refused_change(central_store):  # noqa: F811
    row = {
        **BASE,
        **dict(
            status="closed",
            close_reason="manual",
            status_hlc=50,
            status_origin="central",
            severity="low",
            severity_hlc=0,
            severity_origin="sensor",
            detections=1,
            first_detection_ns=0,
            last_detection_ns=0,
            last_activity_ns=0,
        ),
    }
    with central_store.session() as s:
        upsert_alerts(s, [row])
    sensor_state = {
        "status": "closed",
        "close_reason": "learned",
        "severity": "low",
        "status_hlc": 40,
        "severity_hlc": 0,
    }
    with central_store.session() as s:
        assert not revert_field(s, "s1", 1, "status", 49, sensor_state)  # another change
        assert revert_field(s, "s1", 1, "status", 50, sensor_state)
    with central_store.session() as s:
        alert = s.scalar(select(Alert))
        assert (alert.close_reason, alert.status_hlc, alert.status_origin) == (
            "learned",
            40,
            "sensor",
        )
