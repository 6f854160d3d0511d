"""Devices through central's ingest on SQLite and PostgreSQL (``SensorSync`` ⇄ ``CentralSync``
over the in-memory broker): snapshots land, redelivery changes nothing, an override made
centrally is applied on the sensor and shown applied, a sensor's refusal marks it rejected,
a forgotten device goes, a hostile device event is dropped alone."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from otwatch.agent.replay import replay
from otwatch.agent.sensor import SensorIdentity
from otwatch.agent.store.devices import find_device, forget_device
from otwatch.agent.store.models_devices import DeviceRow
from otwatch.central.commands import CommandRefused
from otwatch.central.ingest import CentralSync
from otwatch.central.store.models import AuditEvent, Command
from otwatch.central.store.models_devices import CentralDevice
from otwatch.sync.protocol.streams import NS, StreamLimits
from otwatch.sync.protocol.topics import up_topic
from otwatch.sync.sensor_sync import SensorSync
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.syncnet import Net

PCAPS = Path(__file__).resolve().parents[3] / ".." / "shared" / "pcaps"
PLC = "10.1.1.164"


@pytest.fixture
def net(store, central_store) -> Net:  # noqa: F811
    replay([PCAPS / "enip_list_identity.pcap"], store, learning_period_ns=0)
    sensor = SensorSync(store, SensorIdentity("s1", "plant", "z1"),
                        limits=StreamLimits(device_coalesce_ns=NS // 2))  # fmt: skip
    n = Net(sensor, CentralSync(central_store))
    n.connect_central()
    n.connect_sensor()
    n.settle()
    return n


def central_devices(net: Net) -> dict[str, CentralDevice]:
    with net.central.store.session() as s:
        rows = list(s.scalars(select(CentralDevice)))
        s.expunge_all()
    return {r.key: r for r in rows}


def sensor_plc(store) -> DeviceRow:
    with store.session() as s:
        row = find_device(s, PLC)
        s.expunge_all()
        return row


def test_snapshots_land_with_identification(net, store):
    devices = central_devices(net)
    assert set(devices) == {PLC, "10.1.1.167"}
    plc, on_sensor = devices[PLC], sensor_plc(store)
    assert (plc.vendor, plc.model, plc.firmware) == (on_sensor.vendor, "1756-ENBT/A", "4.003")
    assert plc.device_id == on_sensor.id and plc.sensor == "s1"
    assert {f["source"] for f in plc.detail["facts"]} == {"enip-listidentity"}
    assert net.central.stats["devices"] == 2


def test_override_round_trip_and_refusal(net, store):
    plc = sensor_plc(store)
    wanted = {"name": "line-3", "purdue_level": 1}
    result = net.issue("s1", "device_override", device_id=plc.id, overrides=wanted, actor="a")
    assert result.outcome == "queued"
    assert central_devices(net)[PLC].central_override["state"] == "pending"
    net.settle()
    on_sensor = sensor_plc(store)
    assert (on_sensor.name_override, on_sensor.purdue_override) == ("line-3", 1)
    shown = central_devices(net)[PLC]
    assert shown.central_override["state"] == "applied" and shown.name_override == "line-3"
    with net.central.store.session() as s:
        assert s.get(Command, result.command_id).status == "applied"
        assert s.scalar(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "device_override")) == 1  # fmt: skip
    # forgotten on the sensor while the link is down: the sensor refuses the next override
    net.disconnect_sensor()
    with store.session() as s:
        forget_device(s, find_device(s, PLC), net.now)
    refused = net.issue("s1", "device_override", device_id=plc.id, overrides={"type": "PLC"},
                        actor="token:ana")  # fmt: skip
    net.connect_sensor()
    net.settle()
    with net.central.store.session() as s:
        cmd = s.get(Command, refused.command_id)
        assert (cmd.status, cmd.outcome) == ("rejected", "not_found")
    assert PLC not in central_devices(net)  # the forget arrived too


def test_unknown_devices_and_bad_overrides_are_refused_centrally(net):
    with pytest.raises(CommandRefused, match="unknown"):
        net.issue("s1", "device_override", device_id=999, overrides={"name": "x"}, actor="a")
    with pytest.raises(CommandRefused, match="invalid device override"):
        net.issue("s1", "device_override", device_id=1, overrides={"purdue_level": 9}, actor="a")
    with pytest.raises(CommandRefused, match="needs"):
        net.issue("s1", "device_override", device_id=1, overrides={}, actor="a")


def test_redelivery_and_a_hostile_device_event(net):
    epoch = net.central.streams["s1"].epoch
    hw = net.central.streams["s1"].hw
    good = {"id": 50, "key": "192.0.2.50", "type": "PLC", "first_seen_ns": 1, "last_seen_ns": 2,
            "vendor": "Good"}  # fmt: skip
    events = [
        {"seq": hw + 1, "id": str(uuid.uuid4()), "kind": "device", "ts_ns": 1, "device_id": 50,
         "device": good},
        {"seq": hw + 2, "id": str(uuid.uuid4()), "kind": "device", "ts_ns": 1, "device_id": 51,
         "device": {**good, "key": "x", "services": ["s"] * 5000}},
    ]  # fmt: skip
    payload = json.dumps({"v": 1, "sensor_id": "s1", "epoch": epoch, "events": events}).encode()
    topic = up_topic("s1", "events")
    net.central.on_message(topic, payload, net.now)
    net.central.on_message(topic, payload, net.now)  # redelivered: nothing changes
    devices = central_devices(net)
    assert devices["192.0.2.50"].vendor == "Good" and "x" not in devices
    assert net.central.dropped["invalid_event"] == 1
    assert net.central.streams["s1"].hw == hw + 2  # the bad event's seq is committed
