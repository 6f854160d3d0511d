"""Per-type rate limit on new alerts: the pure limiter, and the manager folding a storm into one
"Multiple violations" alert per type (real SQLite store)."""

from __future__ import annotations

from sqlalchemy import func, select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.alerts.ratelimit import MAX_SOURCES, RateLimit, RateLimiter, aggregate_key
from otwatch.agent.store.models import Alert, AuditEvent, OutboxEvent
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action, DetectionOutcome
from tests.factories import SEC, T0, detection

FC = "unpermitted_usage_of_modbus_function_code"
EXC = "modbus_exception"


def storm(manager: AlertManager, count: int, type_id: str = FC, start_ns: int = T0) -> list:
    """``count`` distinct new alerts of one type, 1 ms apart; returns the outcomes."""
    return [
        manager.observe(
            detection(type_id, ts_ns=start_ns + i * 1_000_000, src=f"10.{i >> 8 & 255}.{i & 255}.1")
        )
        for i in range(count)
    ]


def rows(store, *where) -> list[Alert]:
    with store.session() as s:
        return list(s.scalars(select(Alert).where(*where).order_by(Alert.id)))


def test_limiter_admits_limit_per_type_per_window():
    limiter = RateLimiter(RateLimit(limit=3, window_ns=10 * SEC))
    assert [limiter.admit("a", T0 + i) for i in range(5)] == [True, True, True, False, False]
    assert limiter.admit("b", T0) is True  # per type
    assert limiter.admit("a", T0 + 10 * SEC) is True  # next window
    assert limiter.admit("a", T0 - SEC) is True  # clock stepped back: a new window


def test_limit_zero_is_off():
    limiter = RateLimiter(RateLimit(limit=0))
    assert all(limiter.admit("a", T0) for _ in range(1000))


def test_aggregate_key_is_per_type_and_differs_from_traffic_keys():
    assert aggregate_key(FC) != aggregate_key(EXC)
    assert aggregate_key(FC) != detection(FC).dedup_key


def test_storm_beyond_the_limit_folds_into_one_aggregate_alert(store):
    manager = AlertManager(
        store, load_catalog(), sensor_id="s1", rate_limit=RateLimit(limit=10, window_ns=60 * SEC)
    )
    outcomes = storm(manager, 250)
    manager.flush()
    assert outcomes.count(DetectionOutcome.NEW_ALERT) == 10
    assert outcomes.count(DetectionOutcome.RATE_LIMITED) == 240
    alerts = rows(store)
    assert len(alerts) == 11
    [aggregate] = [a for a in alerts if a.dedup_key == aggregate_key(FC)]
    assert aggregate.type_id == FC and aggregate.detections == 240
    assert aggregate.message.startswith("Multiple violations: 240 further detections")
    assert aggregate.fields["suppressed"] == 240 and aggregate.fields["limit"] == 10
    assert aggregate.fields["sources"][:2] == ["10.0.10.1", "10.0.11.1"]
    assert len(aggregate.fields["sources"]) == MAX_SOURCES
    assert manager.stats.rate_limited == 240
    with store.session() as s:
        actions = list(
            s.scalars(select(AuditEvent.action).where(AuditEvent.alert_id == aggregate.id))
        )
        assert actions == ["created", "rate_limited"]
        assert s.scalar(select(func.count()).select_from(OutboxEvent)) == 11


def test_aggregate_keeps_counting_across_flushes_and_other_types_are_not_limited(store):
    manager = AlertManager(
        store, load_catalog(), sensor_id="s1", rate_limit=RateLimit(limit=5, window_ns=60 * SEC)
    )
    storm(manager, 20)
    manager.flush()
    storm(manager, 20, start_ns=T0 + 30 * SEC)  # same window: 5 updates, 15 folded
    manager.flush()
    outcomes = storm(manager, 5, type_id=EXC)
    manager.flush()
    assert outcomes == [DetectionOutcome.NEW_ALERT] * 5
    [aggregate] = rows(store, Alert.dedup_key == aggregate_key(FC))
    assert aggregate.detections == 30 and aggregate.fields["suppressed"] == 30
    assert "30 further detections" in aggregate.message
    with store.session() as s:
        audit = list(
            s.scalars(
                select(AuditEvent.detail)
                .where(AuditEvent.alert_id == aggregate.id, AuditEvent.action == "rate_limited")
                .order_by(AuditEvent.id)
            )
        )
    assert [(d["folded"], d["suppressed"]) for d in audit] == [(15, 15), (15, 30)]
    assert len(rows(store, Alert.type_id == EXC)) == 5


def test_open_alerts_are_never_rate_limited(store):
    manager = AlertManager(
        store, load_catalog(), sensor_id="s1", rate_limit=RateLimit(limit=2, window_ns=60 * SEC)
    )
    storm(manager, 2)
    manager.flush()
    again = storm(manager, 2, start_ns=T0 + SEC)  # the same two sources: updates
    assert again == [DetectionOutcome.UPDATE_ALERT] * 2
    manager.flush()
    assert [a.detections for a in rows(store)] == [2, 2]


def test_next_window_admits_new_alerts_again(store):
    manager = AlertManager(
        store, load_catalog(), sensor_id="s1", rate_limit=RateLimit(limit=3, window_ns=60 * SEC)
    )
    storm(manager, 5)
    later = manager.observe(detection(ts_ns=T0 + 61 * SEC, src="192.0.2.99"))
    assert later is DetectionOutcome.NEW_ALERT
    manager.flush()
    assert len(rows(store)) == 5  # 3 + the aggregate + 1 in the next window


def test_muting_the_aggregate_silences_further_folding(store):
    exc_limit = RateLimit(limit=1, window_ns=60 * SEC)
    manager = AlertManager(store, load_catalog(), sensor_id="s1", rate_limit=exc_limit)
    storm(manager, 3, type_id=EXC)
    manager.flush()
    [aggregate] = rows(store, Alert.dedup_key == aggregate_key(EXC))
    [result] = manager.apply([aggregate.id], Action.MUTE, actor="ana")
    assert result.outcome == "applied"
    outcomes = storm(manager, 3, type_id=EXC, start_ns=T0 + 2 * SEC)
    assert outcomes[1:] == [DetectionOutcome.MUTED] * 2
    manager.flush()
    assert rows(store, Alert.dedup_key == aggregate_key(EXC))[0].detections == 2


def test_limit_off_raises_every_alert(store):
    manager = AlertManager(store, load_catalog(), sensor_id="s1", rate_limit=RateLimit(limit=0))
    assert set(storm(manager, 300)) == {DetectionOutcome.NEW_ALERT}
    manager.flush()
    assert len(rows(store)) == 300
