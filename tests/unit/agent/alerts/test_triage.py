"""Triage without the detection path: what the CLI, maintenance and the sync daemon build."""

from __future__ import annotations

from sqlalchemy import event, select

from otwatch.agent.alerts import build
from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.alerts.triage import Triage
from otwatch.agent.sensor import SensorIdentity
from otwatch.agent.store.models import Alert, AlertRule, OutboxEvent
from otwatch.alerts.lifecycle import Action, DetectionOutcome, Origin
from tests.factories import SEC, T0, detection


def _raise_alert(store, **kwargs) -> tuple[AlertManager, int]:
    manager = build.alert_manager(store, SensorIdentity("s1"))
    manager.observe(detection(**kwargs))
    manager.flush()
    with store.session() as s:
        return manager, s.scalar(select(Alert.id).order_by(Alert.id.desc()))


def test_building_triage_reads_no_alert(store):
    """The CLI and sync change one alert without loading every open one (the hot-path cache)."""
    _raise_alert(store)
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    build.triage(store)
    assert statements and not any("FROM alerts" in sql for sql in statements)


def test_triage_learns_and_the_running_manager_follows_at_its_next_flush(store):
    manager, alert_id = _raise_alert(store)
    [result] = build.triage(store).apply([alert_id], Action.LEARN, actor="ana")
    assert result.outcome == "applied"
    manager.observe(detection(ts_ns=T0 + SEC))  # the manager's caches are a flush behind
    manager.flush()
    with store.session() as s:
        assert s.scalars(select(Alert.status)).all() == ["closed"]
        assert s.scalars(select(AlertRule.kind)).all() == ["learn"]
        assert s.scalar(select(OutboxEvent.kind).where(OutboxEvent.kind == "learn")) == "learn"
    assert manager.observe(detection(ts_ns=T0 + 2 * SEC)) is DetectionOutcome.LEARNED


def test_reopen_is_refused_from_the_store_when_the_traffic_has_another_open_alert(store):
    manager, first = _raise_alert(store)
    triage = Triage(store, manager.catalog)
    triage.apply([first], Action.SET_STATUS, actor="ana", value="closed")
    manager.observe(detection(ts_ns=T0 + SEC))
    manager.flush()  # a new alert for the same traffic
    [result] = triage.apply([first], Action.SET_STATUS, actor="ana", value="new")
    assert result.outcome == "refused" and "is open for the same traffic" in result.message


def test_one_call_reopens_only_one_of_two_closed_alerts_of_the_same_traffic(store):
    manager, first = _raise_alert(store)
    triage = build.triage(store)
    triage.apply([first], Action.SET_STATUS, actor="ana", value="closed")
    manager.observe(detection(ts_ns=T0 + SEC))
    manager.flush()  # a second alert for the same traffic
    with store.session() as s:
        second = s.scalar(select(Alert.id).where(Alert.status == "new"))
    triage.apply([second], Action.SET_STATUS, actor="ana", value="closed")
    results = triage.apply([first, second], Action.SET_STATUS, actor="ana", value="new")
    assert [r.outcome for r in results] == ["applied", "refused"]


def test_central_cannot_mute(store):
    _, alert_id = _raise_alert(store, type_id="modbus_exception")
    [result] = build.triage(store).apply(
        [alert_id], Action.MUTE, actor="central:x", origin=Origin.CENTRAL
    )
    assert result.outcome == "refused" and "only possible on the sensor" in result.message
