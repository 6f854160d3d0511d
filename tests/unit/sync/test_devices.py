"""Devices through the sensor's sync: one coalesced outbox row per changed device, device
events that validate as the protocol's ``EventBatch``, forgotten devices, hostile stored
values clipped, and central's ``device_override`` command applied (audited, queued back)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from otwatch.agent.replay import replay
from otwatch.agent.sensor import SensorIdentity
from otwatch.agent.store.devices import find_device, forget_device, save_devices
from otwatch.agent.store.models import AuditEvent, OutboxEvent
from otwatch.agent.store.models_devices import DeviceRow
from otwatch.sync.devices import device_snapshot
from otwatch.sync.protocol.devices import DeviceSnapshot
from otwatch.sync.protocol.messages import MAX_BYTES, EventBatch, decode
from otwatch.sync.protocol.streams import StreamLimits
from otwatch.sync.protocol.topics import down_topic, up_topic
from otwatch.sync.sensor_sync import SensorSync

PCAPS = Path(__file__).resolve().parents[3] / ".." / "shared" / "pcaps"
NOW = 1_800_000_000 * 1_000_000_000
S = 1_000_000_000
PLC = "10.1.1.164"


@pytest.fixture
def engine(store) -> SensorSync:
    replay([PCAPS / "enip_list_identity.pcap"], store, learning_period_ns=0)
    sync = SensorSync(store, SensorIdentity("s1"), limits=StreamLimits(device_coalesce_ns=S))
    sync.on_connect(NOW)
    return sync


def unpublished(store) -> dict[int, int]:
    with store.session() as s:
        rows = s.execute(
            select(OutboxEvent.device_id, func.count())
            .where(OutboxEvent.kind == "device", OutboxEvent.published_ns.is_(None))
            .group_by(OutboxEvent.device_id)
        )
        return dict(rows.all())


def events(engine: SensorSync, now: int) -> list:
    out = []
    for message in engine.poll(now):
        batch = decode(EventBatch, message.payload, MAX_BYTES["events"])
        out.extend(e for e in batch.events if e.kind == "device")
    return out


def test_changed_devices_coalesce_into_one_row_each_and_publish_as_snapshots(engine, store):
    with store.session() as s:
        ids = {r.key: r.id for r in s.scalars(select(DeviceRow))}
    assert unpublished(store) == {ids[PLC]: 1, ids["10.1.1.167"]: 1}
    # another flush touching the PLC adds no row while one waits
    change = {"key": PLC, "ip": PLC, "first_ns": NOW, "last_ns": NOW, "macs": {}, "names": {},
              "facts": {}, "services": [], "peers": [], "evidence": {}, "packets_in": 1,
              "packets_out": 0, "bytes_in": 60, "bytes_out": 0, "vlan": None,
              "mac": None}  # fmt: skip
    with store.session() as s:
        save_devices(s, [change], set(), NOW)
    assert unpublished(store) == {ids[PLC]: 1, ids["10.1.1.167"]: 1}
    sent = {e.device_id: e.device for e in events(engine, NOW)}
    plc = sent[ids[PLC]]
    assert plc is not None and plc.model == "1756-ENBT/A" and plc.last_seen_ns == NOW
    assert {f.source for f in plc.facts} == {"enip-listidentity"}
    assert unpublished(store) == {}
    # changed again after publishing: a new row, sent once the device's interval has passed
    with store.session() as s:
        save_devices(s, [change], set(), NOW + 1)
    assert unpublished(store) == {ids[PLC]: 1}
    assert events(engine, NOW + S // 2) == []  # within the interval: waits
    assert [e.device_id for e in events(engine, NOW + 2 * S)] == [ids[PLC]]


def test_a_forgotten_device_is_sent_as_none(engine, store):
    events(engine, NOW)
    with store.session() as s:
        row = find_device(s, PLC)
        device_id = row.id
        forget_device(s, row, NOW)
    [event] = events(engine, NOW + 2 * S)
    assert event.device_id == device_id and event.device is None


def test_hostile_stored_values_are_clipped_to_the_protocol(store):
    with store.session() as s:
        s.add(DeviceRow(key="192.0.2.9", ip="192.0.2.9", first_seen_ns=1, last_seen_ns=2,
                        macs={}, names={f"n{i}": {"source": "dns"} for i in range(40)},
                        facts=[{"field": "vendor", "value": 7, "source": "x" * 99,
                                "ts_ns": 1}] * 99,
                        services=["s"] * 300, peers=["192.0.2.1"] * 900, evidence={},
                        name="n" * 999, device_type="Toaster", purdue_level=9, vlan=99999,
                        protocols=[], type_reason="", learned=False))  # fmt: skip
    with store.session() as s:
        snap = device_snapshot(s.scalars(select(DeviceRow)).one())
    checked = DeviceSnapshot.model_validate(snap)
    assert checked.type == "Unknown" and checked.purdue_level is None and checked.vlan is None
    assert len(checked.name or "") == 255 and len(checked.peer_addresses) == 256
    assert checked.facts[0].value == "7"


def send(engine: SensorSync, **cmd) -> dict:
    body = {"v": 1, "sensor_id": "s1", "commands": [
        {"id": str(uuid.uuid4()), "kind": "device_override", "actor": "alice", "issued_ns": NOW,
         **cmd}]}  # fmt: skip
    out = engine.on_message(down_topic("s1", "commands"), json.dumps(body).encode(), NOW)
    [ack] = [json.loads(o.payload)["acks"][0] for o in out if o.topic == up_topic("s1", "acks")]
    return ack


def test_device_override_command_is_applied_audited_and_queued(engine, store):
    events(engine, NOW)
    with store.session() as s:
        device_id = find_device(s, PLC).id
    ack = send(engine, device_id=device_id, overrides={"name": "line-3", "purdue_level": 1})
    assert (ack["result"], ack["outcome"]) == ("applied", "applied")
    with store.session() as s:
        row = s.get(DeviceRow, device_id)
        assert (row.name, row.name_override, row.purdue_level) == ("line-3", "line-3", 1)
        assert row.type_override is None  # not given: unchanged
        audit = s.scalars(select(AuditEvent).where(AuditEvent.action == "device_override")).one()
        assert audit.actor == "central:alice" and audit.origin == "central"
    [event] = events(engine, NOW + 2 * S)
    assert event.device.overrides.name == "line-3" and event.device.overrides.purdue_level == 1
    again = send(engine, device_id=device_id, overrides={"name": "line-3"})
    assert (again["result"], again["outcome"]) == ("applied", "unchanged")
    cleared = send(engine, device_id=device_id, overrides={"name": None})
    assert cleared["outcome"] == "applied"
    with store.session() as s:
        assert s.get(DeviceRow, device_id).name_override is None
    missing = send(engine, device_id=424242, overrides={"name": "x"})
    assert (missing["result"], missing["outcome"]) == ("rejected", "not_found")
    assert send(engine, device_id=device_id, overrides={})["outcome"] == "invalid"
    assert send(engine, overrides={"name": "x"})["outcome"] == "invalid"
