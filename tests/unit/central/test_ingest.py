"""Central's ingest on SQLite and PostgreSQL: commit-then-ack, idempotence, hostile input,
commands with optimistic apply and revert, gaps, births, status."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import func, select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.sensor import SensorIdentity
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action
from otwatch.central.commands import CommandRefused, Unchecked
from otwatch.central.ingest import CentralSync
from otwatch.central.store.models import Alert, AuditEvent, Command, Sensor
from otwatch.sync.protocol.streams import NS, StreamLimits
from otwatch.sync.protocol.topics import down_topic, up_topic
from otwatch.sync.sensor_sync import SensorSync
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import T0, detection
from tests.syncnet import Net, central_alerts, sensor_alerts

EXC = "modbus_exception"


@pytest.fixture
def manager(store) -> AlertManager:
    m = AlertManager(store, load_catalog(), sensor_id="s1", site="plant", zone="z1")
    for i in range(5):
        m.observe(detection(src=f"192.0.2.{i + 1}"))
    m.observe(detection(type_id=EXC, src="192.0.2.99", function_code=1, exception_code=2))
    m.flush()
    return m


@pytest.fixture
def net(store, manager, central_store) -> Net:  # noqa: F811
    sensor = SensorSync(store, SensorIdentity("s1", "plant", "z1"), triage_factory=lambda: manager)
    central = CentralSync(central_store, limits=StreamLimits(gap_timeout_ns=2 * NS))
    n = Net(sensor, central)
    n.connect_central()
    n.connect_sensor()
    n.settle()
    return n


def count(central, model, *where) -> int:
    with central.store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_alerts_arrive_equal_and_the_registry_knows_the_sensor(net):
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")
    assert len(central_alerts(net.central, "s1")) == 6
    with net.central.store.session() as s:
        sensor = s.get(Sensor, "s1")
        assert (sensor.site, sensor.zone, sensor.online, sensor.events_hw) == (
            "plant",
            "z1",
            True,
            6,
        )
        assert sensor.health["outbox_depth"] == 6  # status was published before the acks


def test_redelivered_batches_change_nothing(net, manager):
    manager.observe(detection(src="192.0.2.1", ts_ns=T0 + 9 * NS))
    manager.flush()
    net.tick(2)
    [batch] = net.sensor.poll(net.now)
    first = net.central.on_message(batch.topic, batch.payload, net.now)
    again = net.central.on_message(batch.topic, batch.payload, net.now)
    assert first == again  # the same ack
    assert net.central.stats["duplicates"] == 1
    with net.central.store.session() as s:
        assert s.scalar(select(Alert.detections).where(Alert.alert_id == 1)) == 2


def test_wrong_sensor_id_in_payload_is_dropped_and_counted(net, manager):
    manager.apply([1], Action.SET_STATUS, actor="ana", value="closed")
    [batch] = net.sensor.poll(net.now)
    forged = up_topic("s2", "events")
    assert net.central.on_message(forged, batch.payload, net.now) == []
    assert net.central.dropped["wrong_sensor"] == 1
    with net.central.store.session() as s:
        assert s.get(Sensor, "s2") is None  # no phantom sensor (issue 15)
        assert s.scalar(select(Alert.status).where(Alert.alert_id == 1)) == "new"


@pytest.mark.parametrize(
    ("kind", "payload", "reason"),
    [
        ("events", b"[1, 2", "malformed"),
        ("events", b'{"v": 2, "sensor_id": "s1", "epoch": "x", "events": [{}]}', "version"),
        ("status", b'{"v": 1, "sensor_id": "s1", "state": "sleeping"}', "invalid"),
        ("birth", b"{}" + b" " * 5000, "oversized"),
        ("acks", b'{"v": 1, "sensor_id": "s1", "acks": [{"command_id": "nope"}]}', "invalid"),
    ],
)
def test_hostile_messages_are_dropped_and_counted(net, kind, payload, reason):
    before = central_alerts(net.central, "s1")
    assert net.central.on_message(up_topic("s1", kind), payload, net.now) == []
    assert net.central.dropped[reason] == 1
    assert central_alerts(net.central, "s1") == before


def test_one_invalid_event_does_not_block_the_batch(net, manager):
    manager.apply([1], Action.SET_SEVERITY, actor="ana", value="low")
    manager.apply([2], Action.SET_SEVERITY, actor="ana", value="high")
    [batch] = net.sensor.poll(net.now)
    body = json.loads(batch.payload)
    body["events"][0]["alert"]["status"] = "reopened"
    [ack] = net.central.on_message(batch.topic, json.dumps(body).encode(), net.now)
    assert json.loads(ack.payload)["hw"] == 8
    assert net.central.dropped["invalid_event"] == 1
    with net.central.store.session() as s:
        severities = dict(s.execute(select(Alert.alert_id, Alert.severity)).all())
    assert (severities[1], severities[2]) == ("medium", "high")


def test_events_of_an_unknown_epoch_get_a_birth_back(net, manager):
    manager.apply([1], Action.SET_STATUS, actor="ana", value="closed")
    [batch] = net.sensor.poll(net.now)
    body = json.loads(batch.payload)
    body["epoch"] = str(uuid.uuid4())
    [reply] = net.central.on_message(batch.topic, json.dumps(body).encode(), net.now)
    assert reply.topic == down_topic("s1", "birth")
    assert net.central.dropped["stale_epoch"] == 1


def test_a_gap_is_closed_by_a_resync(net, manager):
    manager.apply([1], Action.SET_STATUS, actor="ana", value="active")
    manager.apply([2], Action.SET_STATUS, actor="ana", value="active")
    batches = net.sensor.poll(net.now)
    for b in batches:
        net.sensor.published(b, net.now)
    body = json.loads(batches[0].payload)
    body["events"] = body["events"][1:]  # seq 7 lost on the way
    net.central.on_message(batches[0].topic, json.dumps(body).encode(), net.now)
    net.tick(3)
    out = net.central.poll(net.now)
    [resync] = [json.loads(o.payload)["commands"][0] for o in out if o.topic.endswith("commands")]
    assert (resync["kind"], resync["from_seq"]) == ("resync", 7)
    net.down.extend(out)
    net.settle()
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")
    assert net.central.streams["s1"].hw == 8


def test_central_status_change_is_applied_both_sides(net):
    result = net.issue("s1", "status", alert_id=3, value="closed", actor="admin")
    assert result.outcome == "queued"
    assert central_alerts(net.central, "s1")[3][0] == "closed"  # at once, centrally
    net.settle()
    assert sensor_alerts(net.sensor)[3][0] == "closed"
    with net.central.store.session() as s:
        assert s.get(Command, result.command_id).status == "applied"
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.alert_id == 3)))
    assert actions.count("status") == 2 and "command_applied" in actions  # central's + sensor's


def test_refused_command_is_reverted_centrally(net, manager):
    net.disconnect_sensor()
    manager.apply([1], Action.LEARN, actor="ana")  # on the sensor, while the link is down
    net.tick(1)
    net.issue("s1", "status", alert_id=1, value="active", actor="admin")  # central: reopen
    assert central_alerts(net.central, "s1")[1][0] == "active"
    net.connect_sensor()
    net.settle()
    assert sensor_alerts(net.sensor)[1][:2] == ("closed", "learned")
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")
    with net.central.store.session() as s:
        cmd = s.scalar(select(Command).where(Command.kind == "status"))
        assert (cmd.status, cmd.outcome) == ("rejected", "refused")


@pytest.mark.parametrize("kind", ["unlearn", "mute", "unmute"])
def test_sensor_only_command_sent_anyway_is_refused_and_the_refusal_reaches_central(net, kind):
    with pytest.raises(CommandRefused, match="only possible on the sensor"):
        net.issue("s1", kind, alert_id=6, actor="admin")
    result = net.issue("s1", Unchecked(kind, alert_id=6), actor="admin")
    net.settle()
    with net.central.store.session() as s:
        cmd = s.get(Command, result.command_id)
        assert (cmd.status, cmd.outcome) == ("rejected", "refused")
        assert "only possible on the sensor" in cmd.reason
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")


def test_central_refuses_what_the_lifecycle_forbids(net):
    with pytest.raises(CommandRefused, match="not learnable"):
        net.issue("s1", "learn", alert_id=6, actor="admin")
    with pytest.raises(CommandRefused, match="unknown sensor"):
        net.issue("nope", "status", alert_id=1, value="closed", actor="admin")
    with pytest.raises(CommandRefused, match="unknown"):
        net.issue("s1", "status", alert_id=999, value="closed", actor="admin")
    assert net.issue("s1", "status", alert_id=1, value="new", actor="a").outcome == "unchanged"


def test_pending_commands_wait_for_the_sensor_and_go_on_its_birth(net):
    net.disconnect_sensor()
    net.down.clear()  # the broker lost them too
    result = net.issue("s1", "severity", alert_id=2, value="high", actor="admin")
    net.down.clear()
    net.connect_sensor()
    net.settle()
    assert sensor_alerts(net.sensor)[2][2] == "high"
    with net.central.store.session() as s:
        assert s.get(Command, result.command_id).status == "applied"


def test_pcap_not_available_reaches_central(net):
    result = net.issue("s1", "pcap", alert_id=1, actor="admin")
    net.settle()
    with net.central.store.session() as s:
        cmd = s.get(Command, result.command_id)
        assert (cmd.status, cmd.outcome) == ("rejected", "not_available")
    assert result.request_id not in net.central.pcap.transfers


def test_status_and_will_update_the_registry(net):
    body = {"v": 1, "sensor_id": "s1", "state": "offline", "version": "9", "ts_ns": 1}
    net.central.on_message(up_topic("s1", "status"), json.dumps(body).encode(), net.now)
    with net.central.store.session() as s:
        assert s.get(Sensor, "s1").online is False


def test_restored_central_asks_for_a_snapshot(net, central_store, store, manager):  # noqa: F811
    with central_store.session() as s:
        s.execute(Alert.__table__.delete())
        s.get(Sensor, "s1").events_hw = 0
    fresh = CentralSync(central_store)
    net.central = fresh
    net.disconnect_sensor()
    net.disconnect_central()
    net.connect_central()
    net.connect_sensor()
    net.settle()
    assert sensor_alerts(net.sensor) == central_alerts(fresh, "s1")


def test_a_detection_after_a_rewind_is_not_lost_to_the_older_copy(net, manager):
    """A row central may already hold must not absorb new detections: central skips its
    re-sent sequence number as a duplicate."""
    manager.observe(detection(src="192.0.2.1", ts_ns=T0 + 9 * NS))
    manager.flush()
    net.tick(2)
    [batch] = net.sensor.poll(net.now)
    net.sensor.published(batch, net.now)  # on its way to central
    for birth in net.central.on_connect(net.now):  # central reconnects: the sensor rewinds
        if birth.topic == down_topic("s1", "birth"):
            net.sensor.on_message(birth.topic, birth.payload, net.now)
    manager.observe(detection(src="192.0.2.1", ts_ns=T0 + 10 * NS))
    manager.flush()
    for ack in net.central.on_message(batch.topic, batch.payload, net.now):
        net.sensor.on_message(ack.topic, ack.payload, net.now)
    net.settle()
    assert sensor_alerts(net.sensor)[1][3] == 3
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")


def test_a_full_batch_lands_whole_with_its_search_and_counts(net, store):
    """One message of 1,000 new alerts: upserted many rows per statement, the derived search
    index and group counts (kept by triggers) follow every row."""
    from otwatch.central.store.models_api import AlertCount
    from otwatch.central.store.search import search_condition
    from tests.integration.sync_procs import bulk_alerts

    bulk_alerts(store, 100, 1_000, T0)
    net.settle()
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")
    with net.central.store.session() as s:
        assert s.scalar(select(func.sum(AlertCount.n)).where(AlertCount.sensor == "s1")) == 1_006
        found = search_condition(s, "alert 1099")
        assert list(s.scalars(select(Alert.alert_id).where(found))) == [1099]


def _queued_batches(net, store, alerts: int) -> list:
    """``alerts`` new alerts published by the sensor and not delivered yet (several
    ``up/events`` messages of at most 1,000 events)."""
    from tests.integration.sync_procs import bulk_alerts

    bulk_alerts(store, 100, alerts, T0)
    batches = []
    for _ in range(10):
        batches += [m for m in net.sensor.poll(net.now) if m.topic.endswith("/events")]
        for m in batches[-2:]:
            net.sensor.published(m, net.now)
    assert len(batches) >= 3
    return batches


def test_a_group_of_batches_is_one_transaction_and_one_ack(net, store):
    from sqlalchemy import event

    batches = _queued_batches(net, store, 2_500)
    commits = []
    event.listen(net.central.store.engine, "commit", lambda conn: commits.append(1))
    out = net.central.on_messages([(b.topic, b.payload) for b in batches], net.now)
    assert len(commits) == 1
    [ack] = out  # the last high-water mark says it all
    assert json.loads(ack.payload)["hw"] == max(
        e["seq"] for b in batches for e in json.loads(b.payload)["events"]
    )
    assert net.central.stats["events"] == 2_506 and net.central.stats["duplicates"] == 0
    net._sensor_out(net.sensor.on_message(ack.topic, ack.payload, net.now))
    net.settle()
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")


def test_a_bad_message_in_a_group_is_dropped_alone_and_order_is_kept(net, store):
    first, second, *_later = _queued_batches(net, store, 2_500)
    status = up_topic("s1", "status")
    bad_status = b'{"v": 1, "sensor_id": "s1", "state": "sleeping"}'
    group = [
        (first.topic, first.payload),
        (first.topic, b"[1, 2"),  # malformed: dropped, counted
        (up_topic("s2", "events"), second.payload),  # another sensor's id: dropped
        (status, bad_status),  # not an event batch: handled in its place
        (second.topic, second.payload),
    ]
    out = net.central.on_messages(group, net.now)
    assert net.central.dropped["malformed"] == 1
    assert net.central.dropped["wrong_sensor"] == 1
    assert net.central.dropped["invalid"] == 1
    hws = [json.loads(m.payload)["hw"] for m in out]
    assert len(hws) == 2 and hws[0] < hws[1]  # the run before the status, then the one after
    with net.central.store.session() as s:
        assert s.get(Sensor, "s1").events_hw == hws[1]
        assert s.get(Sensor, "s2") is None  # no phantom sensor
        assert s.scalar(select(func.count()).select_from(Alert).where(Alert.sensor == "s2")) == 0


def test_a_failed_group_commit_acks_nothing_and_the_redelivery_lands_once(net, store, monkeypatch):
    from otwatch.central.ingest import alert_store
    from otwatch.central.store.db import CentralStoreError

    batches = _queued_batches(net, store, 2_500)
    group = [(b.topic, b.payload) for b in batches]
    hw_before, events_before = net.central.streams["s1"].hw, net.central.stats["events"]
    real = alert_store.upsert_alerts

    def failing(session, rows):
        real(session, rows)  # the rows are written, then the transaction fails
        raise CentralStoreError("disk full")

    monkeypatch.setattr(alert_store, "upsert_alerts", failing)
    with pytest.raises(CentralStoreError):
        net.central.on_messages(group, net.now)
    assert net.central.streams["s1"].hw == hw_before  # nothing acknowledged, nothing kept
    assert net.central.stats["events"] == events_before
    assert len(central_alerts(net.central, "s1")) == 6  # rolled back
    monkeypatch.setattr(alert_store, "upsert_alerts", real)
    [ack] = net.central.on_messages(group, net.now)  # the sensor's re-send after its timeout
    assert json.loads(ack.payload)["hw"] > hw_before
    assert net.central.on_messages(group, net.now) == [ack]  # and once more: duplicates
    net._sensor_out(net.sensor.on_message(ack.topic, ack.payload, net.now))
    net.settle()
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")
    assert len(central_alerts(net.central, "s1")) == 2_506


def test_batches_validated_ahead_land_as_the_others_do(net, store):
    """The service validates event batches on another thread (``predecode``) and hands the
    result in with the message: same outcome, bad messages still dropped in their place."""
    from otwatch.sync.protocol.messages import ProtocolError

    batches = _queued_batches(net, store, 2_500)
    group = [(b.topic, b.payload, CentralSync.predecode(b.topic, b.payload)) for b in batches]
    garbage = (batches[0].topic, b"[1, 2", CentralSync.predecode(batches[0].topic, b"[1, 2"))
    assert isinstance(garbage[2], ProtocolError)
    assert CentralSync.predecode(up_topic("s1", "status"), b"{}") is None  # events only
    [ack] = net.central.on_messages([group[0], garbage, *group[1:]], net.now)
    assert net.central.dropped["malformed"] == 1
    assert json.loads(ack.payload)["hw"] == max(
        e["seq"] for b in batches for e in json.loads(b.payload)["events"]
    )
    net._sensor_out(net.sensor.on_message(ack.topic, ack.payload, net.now))
    net.settle()
    assert sensor_alerts(net.sensor) == central_alerts(net.central, "s1")
    assert len(central_alerts(net.central, "s1")) == 2_506


def test_a_status_of_an_unknown_stream_is_answered_with_a_birth_at_most_every_10_s(net):
    """Issue 15, item 6: a central on a fresh database learns a sensor from its status."""
    status = net.sensor.status(net.now)
    net.central.streams.clear()  # as if this central had never seen the sensor's birth
    [reply] = net.central.on_message(status.topic, status.payload, net.now)
    assert reply.topic == down_topic("s1", "birth")
    assert json.loads(reply.payload)["epoch"] is None
    assert net.central.on_message(status.topic, status.payload, net.now + NS) == []
    [_again] = net.central.on_message(status.topic, status.payload, net.now + 11 * NS)
