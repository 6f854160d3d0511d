"""The alert manager against a real SQLite store: de-duplication, lifecycle, audit, outbox."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.models import Alert, AlertRule, AuditEvent, ExclusionRule, OutboxEvent
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action, DetectionOutcome, Origin
from tests.factories import SEC, T0, detection

EXC = "modbus_exception"  # not learnable, mutable
FC = "unpermitted_usage_of_modbus_function_code"  # learnable, not mutable


@pytest.fixture
def manager(store) -> AlertManager:
    return AlertManager(store, load_catalog(), sensor_id="s1", site="plant", zone="cell-a")


def alerts(store) -> list[Alert]:
    with store.session() as s:
        return list(s.scalars(select(Alert).order_by(Alert.id)))


def count(store, model) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def audit_actions(store, alert_id: int) -> list[str]:
    with store.session() as s:
        return list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.alert_id == alert_id)
                .order_by(AuditEvent.id)
            )
        )


def test_same_traffic_while_new_updates_the_alert(manager, store):
    manager.observe(detection(ts_ns=T0))
    manager.flush()
    manager.observe(detection(ts_ns=T0 + 5 * SEC))
    manager.observe(detection(ts_ns=T0 + 3 * SEC))
    manager.flush()
    [alert] = alerts(store)
    assert alert.detections == 3
    assert alert.first_detection_ns == T0
    assert alert.last_detection_ns == T0 + 5 * SEC
    assert (alert.status, alert.sensor, alert.site, alert.zone) == ("new", "s1", "plant", "cell-a")
    assert alert.name == "Unpermitted Usage of Modbus Function Code"
    assert alert.remediation and alert.tactics == ["Impair Process Control"]


def test_active_alert_is_updated_too(manager, store):
    manager.observe(detection())
    manager.flush()
    [alert] = alerts(store)
    manager.apply([alert.id], Action.SET_STATUS, actor="ana", value="active")
    assert manager.observe(detection(ts_ns=T0 + SEC)) is DetectionOutcome.UPDATE_ALERT
    manager.flush()
    [alert] = alerts(store)
    assert (alert.status, alert.detections) == ("active", 2)


def test_closed_alert_is_never_reopened_by_traffic(manager, store):
    manager.observe(detection())
    manager.flush()
    [first] = alerts(store)
    [result] = manager.apply([first.id], Action.SET_STATUS, actor="ana", value="closed")
    assert result.outcome == "applied"
    assert manager.observe(detection(ts_ns=T0 + SEC)) is DetectionOutcome.NEW_ALERT
    manager.flush()
    closed, new = alerts(store)
    assert (closed.status, closed.close_reason, closed.detections) == ("closed", "manual", 1)
    assert closed.last_detection_ns == T0
    assert (new.status, new.detections, new.first_detection_ns) == ("new", 1, T0 + SEC)


def test_different_key_fields_make_different_alerts(manager, store):
    manager.observe(detection(src="192.0.2.1"))
    manager.observe(detection(src="192.0.2.2"))
    manager.observe(detection(src="192.0.2.1", function_code=16))  # not a key field
    manager.flush()
    assert [a.detections for a in alerts(store)] == [2, 1]


def test_learn_closes_adds_rule_and_silences_the_traffic(manager, store):
    manager.observe(detection())
    manager.flush()
    [alert] = alerts(store)
    [result] = manager.apply([alert.id], Action.LEARN, actor="ana")
    assert result.outcome == "applied"
    [alert] = alerts(store)
    assert (alert.status, alert.close_reason) == ("closed", "learned")
    assert count(store, AlertRule) == 1
    assert manager.observe(detection(ts_ns=T0 + SEC)) is DetectionOutcome.LEARNED
    manager.flush()
    assert len(alerts(store)) == 1
    # a fresh manager (agent restart) loads the rule from the store
    again = AlertManager(store, load_catalog(), sensor_id="s1")
    assert again.observe(detection(ts_ns=T0 + 2 * SEC)) is DetectionOutcome.LEARNED
    assert audit_actions(store, alert.id) == ["created", "learn"]


def test_learn_refused_for_non_learnable_type_and_nothing_changes(manager, store):
    manager.observe(detection(EXC, exception_code=2, function_code=3))
    manager.flush()
    [alert] = alerts(store)
    [result] = manager.apply([alert.id], Action.LEARN, actor="ana")
    assert result.outcome == "refused" and "not learnable" in result.message
    assert alerts(store)[0].status == "new"
    assert count(store, AlertRule) == 0
    assert audit_actions(store, alert.id) == ["created"]


def test_unlearn_removes_rule_and_returns_to_new(manager, store):
    manager.observe(detection())
    manager.flush()
    [alert] = alerts(store)
    manager.apply([alert.id], Action.LEARN, actor="ana")
    [result] = manager.apply([alert.id], Action.UNLEARN, actor="ana")
    assert result.outcome == "applied"
    [alert] = alerts(store)
    assert (alert.status, alert.close_reason) == ("new", None)
    assert count(store, AlertRule) == 0
    assert manager.observe(detection(ts_ns=T0 + SEC)) is DetectionOutcome.UPDATE_ALERT
    manager.flush()
    [alert] = alerts(store)
    assert alert.detections == 2
    assert audit_actions(store, alert.id) == ["created", "learn", "unlearn"]


def test_mute_and_unmute(manager, store):
    manager.observe(detection(EXC, exception_code=2))
    manager.flush()
    [alert] = alerts(store)
    assert manager.apply([alert.id], Action.MUTE, actor="ana")[0].outcome == "applied"
    assert manager.observe(detection(EXC, ts_ns=T0 + SEC)) is DetectionOutcome.MUTED
    assert manager.apply([alert.id], Action.MUTE, actor="ana")[0].outcome == "unchanged"
    refused = manager.apply([alert.id], Action.SET_STATUS, actor="ana", value="new")[0]
    assert refused.outcome == "refused" and "unmute" in refused.message
    assert manager.apply([alert.id], Action.UNMUTE, actor="ana")[0].outcome == "applied"
    [alert] = alerts(store)
    assert (alert.status, alert.close_reason) == ("new", None)
    assert count(store, AlertRule) == 0


def test_mute_refused_for_learnable_policy_type(manager, store):
    manager.observe(detection(FC))
    manager.flush()
    [alert] = alerts(store)
    [result] = manager.apply([alert.id], Action.MUTE, actor="ana")
    assert result.outcome == "refused" and "learn it instead" in result.message


def test_sensor_only_actions_from_central_are_refused(manager, store):
    manager.observe(detection(EXC))
    manager.flush()
    [alert] = alerts(store)
    for action in (Action.MUTE, Action.UNLEARN, Action.UNMUTE):
        [result] = manager.apply([alert.id], action, actor="central:bob", origin=Origin.CENTRAL)
        assert result.outcome == "refused" and "only possible on the sensor" in result.message


def test_bulk_reports_per_id(manager, store):
    manager.observe(detection(src="192.0.2.1"))
    manager.observe(detection(EXC, src="192.0.2.2"))
    manager.flush()
    a, b = alerts(store)
    results = manager.apply([a.id, b.id, 999], Action.LEARN, actor="ana")
    assert [r.outcome for r in results] == ["applied", "refused", "not_found"]
    assert results[2].message == "alert 999 does not exist"


def test_every_transition_is_audited_and_queued_for_sync(manager, store):
    manager.observe(detection())
    manager.flush()
    [alert] = alerts(store)
    manager.apply([alert.id], Action.SET_SEVERITY, actor="ana", value="high")
    manager.apply([alert.id], Action.SET_STATUS, actor="ana", value="active")
    manager.apply([alert.id], Action.COMMENT, actor="ana", value="checked with ops")
    manager.apply([alert.id], Action.SET_STATUS, actor="ana", value="active")  # unchanged
    assert audit_actions(store, alert.id) == ["created", "severity", "status", "comment"]
    with store.session() as s:
        kinds = list(s.scalars(select(OutboxEvent.kind).order_by(OutboxEvent.seq)))
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "severity")).one()
    assert kinds == ["alert", "severity", "status", "comment"]
    assert audit.actor == "ana" and audit.origin == "sensor"
    assert audit.detail["before"]["severity"] == "medium"
    assert audit.detail["after"]["severity"] == "high"


def test_audit_log_is_append_only(manager, store):
    manager.observe(detection())
    manager.flush()
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory'"))


def test_burst_of_100k_detections_is_one_alert_and_few_outbox_events(store):
    manager = AlertManager(store, load_catalog(), sensor_id="s1", max_pending=10)
    det = detection()
    for i in range(100_000):
        manager.observe(det)
        if i % 1000 == 999:
            manager.flush()  # as the live agent does about once a second
    manager.flush()
    [alert] = alerts(store)
    assert alert.detections == 100_000
    assert count(store, OutboxEvent) == 1
    assert count(store, AuditEvent) == 1


def test_outbox_gets_a_new_snapshot_event_once_the_old_one_is_published(manager, store):
    manager.observe(detection())
    manager.flush()
    with store.session() as s:
        s.execute(OutboxEvent.__table__.update().values(published_ns=1))
    manager.observe(detection(ts_ns=T0 + SEC))
    manager.flush()
    manager.observe(detection(ts_ns=T0 + 2 * SEC))
    manager.flush()
    assert count(store, OutboxEvent) == 2


def test_alert_closed_by_another_process_is_not_bumped(manager, store):
    manager.observe(detection())
    manager.flush()
    [alert] = alerts(store)
    cli = AlertManager(store, load_catalog(), sensor_id="s1")  # e.g. the CLI process
    cli.apply([alert.id], Action.SET_STATUS, actor="ana", value="closed")
    manager.observe(detection(ts_ns=T0 + SEC))
    manager.flush()
    closed, new = alerts(store)
    assert (closed.status, closed.detections) == ("closed", 1)
    assert (new.status, new.detections) == ("new", 1)


def test_learn_by_another_process_reaches_the_running_manager(manager, store):
    manager.observe(detection())
    manager.flush()
    [alert] = alerts(store)
    AlertManager(store, load_catalog(), sensor_id="s1").apply([alert.id], Action.LEARN, actor="a")
    manager.observe(detection(ts_ns=T0 + SEC))  # still pending: the rule is checked at flush
    manager.flush()
    assert len(alerts(store)) == 1
    assert manager.observe(detection(ts_ns=T0 + 2 * SEC)) is DetectionOutcome.LEARNED


def test_reopen_refused_while_another_alert_is_open_for_the_same_traffic(manager, store):
    manager.observe(detection())
    manager.flush()
    [first] = alerts(store)
    manager.apply([first.id], Action.SET_STATUS, actor="ana", value="closed")
    manager.observe(detection(ts_ns=T0 + SEC))
    manager.flush()
    [result] = manager.apply([first.id], Action.SET_STATUS, actor="ana", value="new")
    assert result.outcome == "refused" and "is open for the same traffic" in result.message


def test_exclusion_rule_drops_matching_detections(store):
    with store.session() as s:
        s.add(
            ExclusionRule(
                name="maintenance",
                alert_types=[FC],
                subnets=["192.0.2.0/28"],
                start_ns=T0,
                end_ns=T0 + 60 * SEC,
                created_ns=T0,
                actor="admin",
            )
        )
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    assert manager.observe(detection(src="192.0.2.5")) is DetectionOutcome.EXCLUDED
    assert manager.observe(detection(src="192.0.2.99")) is DetectionOutcome.NEW_ALERT
    assert manager.observe(detection(src="192.0.2.5", ts_ns=T0 + 61 * SEC)) is (
        DetectionOutcome.NEW_ALERT
    )
    assert manager.observe(detection(EXC, src="192.0.2.5")) is DetectionOutcome.NEW_ALERT
    assert manager.stats.excluded == 1


def test_older_central_change_is_superseded_by_later_sensor_change(manager, store):
    manager.observe(detection())
    manager.flush()
    [alert] = alerts(store)
    stale = manager.clock.now()
    manager.apply([alert.id], Action.SET_STATUS, actor="ana", value="active")
    [result] = manager.apply(
        [alert.id],
        Action.SET_STATUS,
        actor="central:bob",
        origin=Origin.CENTRAL,
        value="closed",
        hlc=stale,
    )
    assert result.outcome == "superseded"
    assert alerts(store)[0].status == "active"


def _stored(store) -> list[tuple]:
    return [
        (a.type_id, a.dedup_key, a.detections, a.first_detection_ns, a.last_detection_ns,
         a.message, a.fields)
        for a in alerts(store)
    ]  # fmt: skip


@pytest.mark.parametrize("excluded", [False, True])
def test_a_repeat_is_observing_the_detection_again_with_its_new_time(tmp_path, excluded):
    """``repeat(det, ts)`` leaves what ``observe(det._replace(ts_ns=ts))`` would: the same
    outcomes, counts, alerts and aggregate, whether the key is pending, open after a flush,
    rate limited, learned, or (with an exclusion rule) judged by time."""
    from otwatch.agent.alerts.ratelimit import RateLimit
    from otwatch.agent.store.db import open_store

    results = []
    for via_repeat in (False, True):
        store = open_store(tmp_path / f"{via_repeat}")
        if excluded:
            with store.session() as s:
                s.add(ExclusionRule(name="window", alert_types=[FC], subnets=["192.0.2.0/28"],
                                    start_ns=T0 + 10 * SEC, end_ns=T0 + 20 * SEC, created_ns=T0,
                                    actor="admin"))  # fmt: skip
        manager = AlertManager(
            store, load_catalog(), sensor_id="s1", rate_limit=RateLimit(2, 60 * SEC)
        )
        firsts = [detection(src=f"192.0.2.{i}", ts_ns=T0 + i) for i in range(1, 5)]
        outcomes = [manager.observe(det) for det in firsts]  # .3 and .4 fold into the aggregate

        def again(det, ts, via_repeat=via_repeat, manager=manager):
            if via_repeat:
                return manager.repeat(det, ts)
            return manager.observe(det._replace(ts_ns=ts))

        for step, ts in enumerate((5, 15, 3, 25, 70, 2)):
            if step == 3:
                manager.flush()
            if step == 4:
                [alert] = [a for a in alerts(store) if a.source_address == "192.0.2.2"]
                manager.apply([alert.id], Action.LEARN, actor="ana")
            outcomes += [again(det, T0 + ts * SEC) for det in firsts]
        manager.flush()
        stats = manager.stats
        results.append((
            outcomes, _stored(store),
            (stats.detections, stats.learned, stats.excluded, stats.rate_limited),
        ))  # fmt: skip
        store.close()
    assert results[0] == results[1]
    outcomes = results[0][0]
    assert DetectionOutcome.RATE_LIMITED in outcomes and DetectionOutcome.LEARNED in outcomes
    assert (DetectionOutcome.EXCLUDED in outcomes) is excluded
