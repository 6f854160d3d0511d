"""SensorSync against a real SQLite store: commands, acks, hostile input."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from sqlalchemy import func, select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.sensor import SensorIdentity
from otwatch.agent.store.models import Alert, AuditEvent, OutboxEvent
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action
from otwatch.sync.protocol.messages import MAX_BYTES, decode_pcap_chunk
from otwatch.sync.protocol.topics import down_topic, up_topic
from otwatch.sync.sensor_sync import SensorSync
from tests.factories import T0, detection

NOW = 1_800_000_000 * 1_000_000_000
EXC = "modbus_exception"  # not learnable


@pytest.fixture
def manager(store) -> AlertManager:
    return AlertManager(store, load_catalog(), sensor_id="s1")


@pytest.fixture
def engine(store, manager) -> SensorSync:
    manager.observe(detection())  # alert 1: learnable
    manager.observe(detection(type_id=EXC, src="192.0.2.99", function_code=1, exception_code=2))
    manager.flush()
    sync = SensorSync(store, SensorIdentity("s1"), triage_factory=lambda: manager)
    sync.on_connect(NOW)
    return sync


def command(kind: str, alert_id: int | None = 1, **extra) -> dict:
    return {
        "id": str(uuid.uuid4()),
        "kind": kind,
        "alert_id": alert_id,
        "actor": "admin",
        "issued_ns": NOW,
        "hlc": (NOW // 1_000_000) << 16,
        **extra,
    }


def send(engine: SensorSync, *commands: dict, sensor_id: str = "s1") -> list[dict]:
    body = {"v": 1, "sensor_id": sensor_id, "commands": list(commands)}
    out = engine.on_message(down_topic("s1", "commands"), json.dumps(body).encode(), NOW)
    acks = [o for o in out if o.topic == up_topic("s1", "acks")]
    return json.loads(acks[0].payload)["acks"] if acks else []


def alert(store, alert_id: int) -> Alert:
    with store.session() as s:
        return s.get(Alert, alert_id)


def count(store, model, *where) -> int:
    with store.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_status_command_is_applied_once_audited_as_central_and_acked(engine, store):
    cmd = command("status", value="closed")
    [ack] = send(engine, cmd)
    assert (ack["result"], ack["outcome"]) == ("applied", "applied")
    assert ack["alert"]["status"] == "closed" and ack["alert"]["status_hlc"] > cmd["hlc"]
    assert alert(store, 1).status == "closed"
    with store.session() as s:
        origins = s.scalars(select(AuditEvent.origin).where(AuditEvent.action == "status"))
        assert list(origins) == ["central"]
    assert count(store, OutboxEvent, OutboxEvent.kind == "status") == 1
    # The same command again (a redelivery or a replay): same answer, nothing applied twice.
    assert send(engine, cmd) == [ack]
    assert engine.dropped["replayed_command"] == 1
    assert count(store, AuditEvent, AuditEvent.action == "status") == 1


@pytest.mark.parametrize("kind", ["unlearn", "mute", "unmute"])
def test_sensor_only_actions_from_central_are_refused_with_the_reason(engine, store, kind):
    [ack] = send(engine, command(kind, alert_id=2, value="x"))
    assert (ack["result"], ack["outcome"]) == ("rejected", "refused")
    assert "only possible on the sensor" in ack["reason"]
    assert alert(store, 2).status == "new"


def test_a_comment_from_central_is_stored_with_its_author(engine, store):
    text = "Checked with the plant: <b>planned</b> work, ticket #42 ünïcode"
    [ack] = send(engine, command("comment", alert_id=2, actor="user:alice", text=text))
    assert (ack["result"], ack["outcome"]) == ("applied", "applied")
    with store.session() as s:
        [row] = s.scalars(select(AuditEvent).where(AuditEvent.action == "comment"))
        assert (row.actor, row.origin, row.detail["text"]) == (
            "central:user:alice",
            "central",
            text,
        )
    assert alert(store, 2).status == "new"  # a comment changes nothing else
    [empty] = send(engine, command("comment", alert_id=2, text="  "))
    assert (empty["result"], empty["outcome"]) == ("rejected", "invalid")


def test_learn_of_a_non_learnable_type_is_refused(engine, store):
    [ack] = send(engine, command("learn", alert_id=2))
    assert ack["outcome"] == "refused" and "not learnable" in ack["reason"]
    assert alert(store, 2).status == "new"
    assert engine.dropped["rejected_refused"] == 1


def test_learn_closes_and_adds_the_rule(engine, store):
    [ack] = send(engine, command("learn"))
    assert ack["result"] == "applied"
    assert (alert(store, 1).status, alert(store, 1).close_reason) == ("closed", "learned")


def test_unknown_alert_and_unknown_kind_are_rejected_and_counted(engine):
    [a, b] = send(engine, command("status", alert_id=999, value="closed"), command("reboot"))
    assert (a["outcome"], b["outcome"]) == ("not_found", "unknown")
    assert engine.dropped["unknown_alert"] == engine.dropped["unknown_command"] == 1


def test_an_older_central_change_is_superseded_by_a_later_sensor_one(engine, store, manager):
    manager.apply([1], Action.SET_STATUS, actor="ana", value="active")
    [ack] = send(engine, command("status", value="closed", hlc=1))
    assert (ack["result"], ack["outcome"]) == ("rejected", "superseded")
    assert ack["alert"]["status"] == "active"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (down_topic("s1", "commands"), b"{not json", "malformed"),
        (down_topic("s1", "commands"), b'{"v": 9, "sensor_id": "s1", "commands": []}', "version"),
        (down_topic("s1", "commands"), b" " * (MAX_BYTES["commands"] + 1), "oversized"),
        (down_topic("s1", "acks"), b'{"v": 1, "sensor_id": "s1", "hw": "x"}', "invalid"),
        (down_topic("s2", "commands"), b"{}", "wrong_sensor"),
        (up_topic("s1", "events"), b"{}", "wrong_sensor"),
        ("otwatch/v1/s1/down/../../x", b"{}", "bad_topic"),
    ],
)
def test_hostile_messages_are_dropped_counted_and_change_nothing(
    engine, store, topic, payload, reason
):
    before = (count(store, AuditEvent), count(store, OutboxEvent), alert(store, 1).status)
    assert engine.on_message(topic, payload, NOW) == []
    assert engine.dropped[reason] == 1
    assert (count(store, AuditEvent), count(store, OutboxEvent), alert(store, 1).status) == before
    assert engine.health()["dropped"][reason] == 1


def test_payload_for_another_sensor_on_our_topic_is_dropped(engine, store):
    assert send(engine, command("status", value="closed"), sensor_id="s2") == []
    assert engine.dropped["wrong_sensor"] == 1
    assert alert(store, 1).status == "new"


def test_ack_of_another_epoch_is_ignored(engine, store):
    engine.poll(NOW)
    body = {"v": 1, "sensor_id": "s1", "epoch": str(uuid.uuid4()), "hw": 2}
    engine.on_message(down_topic("s1", "acks"), json.dumps(body).encode(), NOW)
    assert engine.dropped["stale_epoch"] == 1
    assert count(store, OutboxEvent) == 2


def test_pcap_not_available_without_a_provider(engine):
    [ack] = send(engine, command("pcap", request_id=str(uuid.uuid4())))
    assert (ack["result"], ack["outcome"]) == ("rejected", "not_available")


def test_pcap_chunks_carry_index_total_and_digest(store, manager, tmp_path):
    blob = bytes(range(256)) * 1200  # 300 KiB: three chunks
    path = tmp_path / "a.pcap"
    path.write_bytes(blob)

    class Provider:
        def get(self, alert_id):
            return path if alert_id == 1 else None

    manager.observe(detection())
    manager.flush()
    engine = SensorSync(
        store, SensorIdentity("s1"), pcap=Provider(), triage_factory=lambda: manager
    )
    rid = str(uuid.uuid4())
    body = {"v": 1, "sensor_id": "s1", "commands": [command("pcap", request_id=rid)]}
    engine.on_message(down_topic("s1", "commands"), json.dumps(body).encode(), NOW)
    [stream] = engine.pcap_sender.drain()  # streamed by the daemon, not returned
    out = list(stream.messages())
    chunks = [decode_pcap_chunk(o.payload) for o in out if o.topic == up_topic("s1", "pcap", rid)]
    assert [h.index for h, _ in chunks] == [0, 1, 2] and {h.total for h, _ in chunks} == {3}
    data = b"".join(bytes(c) for _, c in chunks)
    assert data == blob and chunks[0][0].sha256 == hashlib.sha256(blob).hexdigest()
    body["commands"] = [command("pcap", request_id=rid, chunks=[1])]
    engine.on_message(down_topic("s1", "commands"), json.dumps(body).encode(), NOW)
    [stream] = engine.pcap_sender.drain()
    assert [decode_pcap_chunk(o.payload)[0].index for o in stream.messages()] == [1]


def test_events_flow_acks_delete_but_keep_the_newest_row(engine, store, manager):
    batches = engine.poll(NOW)
    [events] = [json.loads(b.payload)["events"] for b in batches]
    assert [e["seq"] for e in events] == [1, 2]
    assert events[0]["alert"]["detections"] == 1 and events[0]["kind"] == "alert"
    for b in batches:
        engine.published(b, NOW)
    ack = {"v": 1, "sensor_id": "s1", "epoch": engine.epoch, "hw": 2}
    engine.on_message(down_topic("s1", "acks"), json.dumps(ack).encode(), NOW)
    with store.session() as s:
        assert list(s.scalars(select(OutboxEvent.seq))) == [2]  # the anchor
    manager.apply([1], Action.SET_SEVERITY, actor="ana", value="low")
    with store.session() as s:
        assert max(s.scalars(select(OutboxEvent.seq))) == 3  # numbering continues


def test_new_detections_during_publish_are_not_lost(engine, store, manager):
    """The snapshot and the published mark are one transaction: a later flush adds a row."""
    [batch] = engine.poll(NOW)
    engine.published(batch, NOW)
    manager.observe(detection(ts_ns=T0 + 5))
    manager.flush()
    assert count(store, OutboxEvent, OutboxEvent.published_ns.is_(None)) == 1
    [later] = engine.poll(NOW + 2_000_000_000)
    assert json.loads(later.payload)["events"][0]["alert"]["detections"] == 2


def test_full_resync_queues_a_snapshot_of_every_alert(engine, store):
    for b in engine.poll(NOW):
        engine.published(b, NOW)
    [ack] = send(engine, command("resync", alert_id=None))
    assert ack["result"] == "applied"
    assert count(store, OutboxEvent, OutboxEvent.published_ns.is_(None)) == 2


def test_birth_and_status_describe_the_sensor(engine):
    birth, status = engine.on_connect(NOW)
    body = json.loads(birth.payload)
    assert (body["acked_hw"], body["last_seq"], body["epoch"]) == (0, 2, engine.epoch)
    assert status.retain and json.loads(status.payload)["health"]["outbox_depth"] == 2
    assert json.loads(engine.will().payload)["state"] == "offline"


def test_status_health_carries_the_agents_capture_drops_and_ring_usage(engine, store):
    from otwatch.agent.capture.status import CAPTURE_STATE
    from otwatch.agent.store.models_pcap import PcapSegment
    from otwatch.agent.store.state import put_state
    from otwatch.sync.protocol.messages import SensorStatus, decode

    def health() -> dict:
        body = decode(SensorStatus, engine.status(NOW).payload, MAX_BYTES["status"])
        return body.health.model_dump()

    assert (health()["capture_drops"], health()["ring_usage"]) == (None, None)  # no agent yet
    with store.session() as s:
        put_state(
            s,
            CAPTURE_STATE,
            {
                "state": "capturing",
                "interfaces": {
                    "eth0": {"received": 900, "kernel_packets": 905, "kernel_drops": 5},
                    "eth1": {"received": 10, "kernel_packets": 12, "kernel_drops": 2},
                },
                "ring": {"packets": 910, "enabled": True},
                "ring_budget_bytes": 4000,
            },
        )
        segment = {"writer": "w0", "owner_pid": 1, "linktype": 1, "nanosecond": True}
        for i, size in enumerate((600, 400)):
            s.add(PcapSegment(path=f"/ring/{i}.pcap", bytes=size, created_ns=NOW, **segment))
    assert (health()["capture_drops"], health()["ring_usage"]) == (7, 0.25)


def test_published_snapshots_fit_the_schema_whatever_the_store_holds(engine, store):
    """SQLite builds the snapshots; a row whose JSON columns it cannot prove within the
    limits takes the Python path. Both give what ``snapshot`` defines."""
    from otwatch.sync.outbox import snapshot
    from otwatch.sync.protocol.messages import EventBatch, decode

    with store.session() as s:
        hostile = s.get(Alert, 2)
        hostile.name, hostile.message = "n" * 500, 'm\u00e9\n"' * 3000
        hostile.source_address = "a" * 100
        hostile.tactics = [f"t{i}" for i in range(40)] + [5]
        hostile.remediation = ["r" * 5000]
        hostile.fields = {f"key{i}": i for i in range(70)}
    [batch] = engine.poll(NOW)
    events = {e.alert_id: e for e in decode(EventBatch, batch.payload, MAX_BYTES["events"]).events}
    with store.session() as s:
        expected = {i: snapshot(s.get(Alert, i)) for i in (1, 2)}
    assert events[1].alert.model_dump() == expected[1]  # the SQL path
    assert events[2].alert.model_dump() == expected[2]  # the Python path
    got = events[2].alert
    assert (len(got.name), len(got.message), len(got.source_address)) == (200, 4096, 64)
    assert (len(got.tactics), len(got.remediation[0]), len(got.fields)) == (32, 4096, 64)


def test_an_ack_of_rows_never_sent_deletes_nothing_and_starts_a_new_epoch(engine, store):
    """Issue 15: central's mark moved past what this sensor sent (forged events or ack)."""
    [batch] = engine.poll(NOW)
    engine.published(batch, NOW)
    with store.session() as s:
        before = list(s.scalars(select(OutboxEvent.seq)))
    old_epoch = engine.epoch
    ack = {"v": 1, "sensor_id": "s1", "epoch": old_epoch, "hw": before[-1] + 3}
    out = engine.on_message(down_topic("s1", "acks"), json.dumps(ack).encode(), NOW)
    assert engine.dropped["ack_unsent"] == 1 and engine.epoch != old_epoch
    assert [o.topic for o in out] == [up_topic("s1", "birth")]
    [again] = engine.poll(NOW + 2 * 10**9)  # every alert again, in the new epoch
    assert {e["alert_id"] for e in json.loads(again.payload)["events"]} == {1, 2}
