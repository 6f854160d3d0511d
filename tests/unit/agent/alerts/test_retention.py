"""Sensor-side auto-close (audited, synced with close reason auto) and retention."""

from __future__ import annotations

from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.alerts.retention import ACTOR, DAY_NS, run_retention
from otwatch.agent.store.models import Alert, AuditEvent, OutboxEvent
from otwatch.alerts.catalog import load_catalog
from tests.factories import T0, detection


def test_auto_close_and_retention_on_the_sensor(store):
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    for i, age_days in enumerate((100, 95, 80, 10, 1)):
        manager.observe(detection(src=f"192.0.2.{i + 1}", ts_ns=T0 - age_days * DAY_NS))
    manager.observe(detection(src="192.0.2.2", ts_ns=T0 - 1 * DAY_NS))  # traffic again: reset
    manager.flush()
    with store.session() as s:
        ids = {a.source_address: a.id for a in s.scalars(select(Alert))}
    result = run_retention(manager, auto_close_ns=60 * DAY_NS, retention_ns=90 * DAY_NS, now=T0)
    # 192.0.2.1 (100 d) is deleted; .2 (95 d first, seen yesterday) deleted too: retention
    # counts from first detection whatever the status; .3 (80 d) auto-closed
    assert result.as_dict() == {"auto_closed": 2, "deleted": 2}
    with store.session() as s:
        rows = {a.source_address: (a.status, a.close_reason) for a in s.scalars(select(Alert))}
        assert rows == {
            "192.0.2.3": ("closed", "auto"),
            "192.0.2.4": ("new", None),
            "192.0.2.5": ("new", None),
        }
        audit = s.scalars(
            select(AuditEvent).where(
                AuditEvent.alert_id == ids["192.0.2.3"], AuditEvent.actor == ACTOR
            )
        ).all()
        assert [a.detail["after"]["close_reason"] for a in audit] == ["manual", "auto"]
        change = s.scalar(
            select(OutboxEvent).where(
                OutboxEvent.alert_id == ids["192.0.2.3"], OutboxEvent.kind == "status"
            )
        )
        assert change.payload["actor"] == ACTOR
        assert change.payload["after"] == {
            "status": "closed",
            "close_reason": "auto",
            "severity": change.payload["after"]["severity"],
        }
    # the same traffic again raises a new alert (the old one is closed)
    manager.observe(detection(src="192.0.2.3", ts_ns=T0))
    assert manager.flush().new == 1
    # never reuse ids: the newest alert survives retention even when expired
    result = run_retention(manager, auto_close_ns=None, retention_ns=1, now=T0 + 10 * DAY_NS)
    with store.session() as s:
        assert [a.id for a in s.scalars(select(Alert))] == [max(ids.values()) + 1]
