"""PCAP requests through the API (cache, offline sensor, not available, safe file names),
cross-sensor unification, auto-close and retention on central."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from otwatch.central.api import LocalCommander, create_app
from otwatch.central.maintenance import DAY_NS, MaintenanceSettings
from otwatch.central.node import CentralNode
from otwatch.central.pcapstore import PcapPathError, PcapStore
from otwatch.central.store.models import Alert, AuditEvent, Command
from otwatch.central.store.models_api import AlertMember
from otwatch.sync.protocol.messages import VERSION, encode_raw
from otwatch.sync.protocol.topics import up_topic
from otwatch.timeutil import now_ns
from tests.centralapi import add_alerts, add_sensor, pcap_chunks, snapshot, token
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.factories import MIN, SEC, T0

API = "/api/v1"


@pytest.fixture
def world(central_store, tmp_path):  # noqa: F811
    add_alerts(central_store, "s1", [snapshot(1), snapshot(2)])
    add_sensor(central_store, "s2", online=False)
    add_alerts(central_store, "s2", [snapshot(5, source_address="192.0.2.200")])
    pcaps = PcapStore(central_store, tmp_path / "pcap")
    engine = CentralNode(central_store, pcap_sink=pcaps)
    client = TestClient(
        create_app(central_store, LocalCommander(engine), pcaps, progress=engine.pcap_progress)
    )
    admin = {"Authorization": f"Bearer {token(central_store, 'alice', 'admin')}"}
    return client, admin, engine, pcaps, central_store


def ack(sensor: str, command_id: str, result: str, outcome: str, reason: str = "") -> tuple:
    body = {
        "v": VERSION,
        "sensor_id": sensor,
        "acks": [
            {"command_id": command_id, "result": result, "outcome": outcome, "reason": reason}
        ],
    }
    return up_topic(sensor, "acks"), encode_raw(body)


def test_pcap_pull_is_verified_stored_cached_and_downloaded(world):
    client, admin, engine, pcaps, store = world
    first = client.post(f"{API}/alerts/1-s1/pcap", headers=admin).json()
    assert first["state"] == "pending" and "waiting for sensor s1" in first["message"]
    rid = first["request_id"]
    with store.session() as s:
        command = s.scalar(select(Command).where(Command.kind == "pcap"))
        assert (command.alert_id, command.params["request_id"], command.actor) == (
            1,
            rid,
            "token:alice",
        )
    # asking again while it is under way reuses the request
    assert client.post(f"{API}/alerts/1-s1/pcap", headers=admin).json()["request_id"] == rid
    engine.on_message(*ack("s1", command.id, "applied", "applied"), T0)
    data = bytes(range(256)) * 20
    for i, (topic, payload) in enumerate(pcap_chunks(data, rid, "s1", 1)):
        engine.on_message(topic, payload, T0)
        if i == 0:
            view = client.get(f"{API}/pcap/{rid}", headers=admin).json()
            assert view["chunks_received"] == 1 and view["chunks_total"] == 6
            assert "sending" in view["message"]
    done = client.get(f"{API}/pcap/{rid}", headers=admin).json()
    assert done["state"] == "done" and done["sha256"] == hashlib.sha256(data).hexdigest()
    body = client.get(done["download"], headers=admin)
    assert body.content == data and body.headers["x-otwatch-sha256"] == done["sha256"]
    # cached: a new ask answers at once with the same file
    assert client.post(f"{API}/alerts/1-s1/pcap", headers=admin).json()["request_id"] == rid
    assert client.get(f"{API}/alerts/1-s1", headers=admin).json()["pcap_available"] is True
    # after 48 h the cache is gone
    assert pcaps.expire(T0 * 0 + done_ns(store, rid) + 49 * 3600 * SEC) == 1
    assert not pcaps.path(rid).exists()
    assert client.get(f"{API}/pcap/{rid}", headers=admin).json()["state"] == "expired"


def done_ns(store, rid: str) -> int:
    from otwatch.central.store.models_api import PcapRequest

    with store.session() as s:
        return s.get(PcapRequest, rid).done_ns


def test_offline_sensor_keeps_the_request_pending_and_a_missing_pcap_is_reported(world):
    client, admin, engine, _pcaps, store = world
    view = client.post(f"{API}/alerts/5-s2/pcap", headers=admin).json()
    assert view["state"] == "pending" and not view["sensor_online"]
    assert "offline" in view["message"] and "completes when the sensor returns" in view["message"]
    # offline: the transfer is not re-requested however long it waits
    engine.poll(now_ns() + 3600 * SEC)  # an hour after the request (stamped on the wall clock)
    with store.session() as s:
        assert s.scalar(select(func.count()).where(Command.kind == "pcap")) == 1
    # the sensor returns and no longer has it
    with store.session() as s:
        command = s.scalar(select(Command).where(Command.kind == "pcap"))
    engine.on_message(
        *ack("s2", command.id, "rejected", "not_available", "PCAP not available for alert 5"), T0
    )
    view = client.get(f"{API}/pcap/{view['request_id']}", headers=admin).json()
    assert view["state"] == "not_available" and "no longer has" in view["message"]
    assert view["request_id"] not in engine.pcap.transfers


def test_chunks_after_a_central_restart_still_complete_the_request(world, tmp_path):
    client, admin, _engine, pcaps, store = world
    rid = client.post(f"{API}/alerts/2-s1/pcap", headers=admin).json()["request_id"]
    restarted = CentralNode(store, pcap_sink=pcaps)  # knows no transfer in memory
    for topic, payload in pcap_chunks(b"\xd4\xc3\xb2\xa1" + b"x" * 5000, rid, "s1", 2):
        restarted.on_message(topic, payload, T0)
    assert client.get(f"{API}/pcap/{rid}", headers=admin).json()["state"] == "done"
    # chunks of an unknown request are ignored quietly (not a sensor error)
    other = str(uuid.uuid4())
    for topic, payload in pcap_chunks(b"abc", other, "s1", 2):
        assert restarted.on_message(topic, payload, T0) == []
    assert restarted.stats["pcap_ignored"] == 1 and not restarted.dropped


def test_a_silent_online_sensor_fails_the_request_with_a_reason(world):
    client, admin, engine, _pcaps, store = world
    rid = client.post(f"{API}/alerts/1-s1/pcap", headers=admin).json()["request_id"]
    now = now_ns() + 1  # the API stamps the request with the wall clock
    for _ in range(engine.pcap.max_rerequests + 1):
        now += engine.pcap.stall_ns
        engine.poll(now)
    view = client.get(f"{API}/pcap/{rid}", headers=admin).json()
    assert view["state"] == "failed"
    assert "was online but never sent a chunk" in view["message"]
    assert "request the PCAP again" in view["message"]
    assert rid not in engine.pcap.transfers and engine.stats["pcap_failed"] == 1
    with store.session() as s:
        commands = list(s.scalars(select(Command).where(Command.kind == "pcap")))
    # the first request and its re-requests, none left pending to be re-sent forever
    assert len(commands) == engine.pcap.max_rerequests + 1
    assert {(c.status, c.outcome) for c in commands} == {("rejected", "timeout")}
    # much later: nothing more goes to the sensor for this request
    assert engine.poll(now + 3600 * SEC) == []
    # a new ask starts a new request
    again = client.post(f"{API}/alerts/1-s1/pcap", headers=admin).json()
    assert again["state"] == "pending" and again["request_id"] != rid


def test_pending_requests_are_tracked_again_after_a_restart(world):
    client, admin, _engine, pcaps, store = world
    rid = client.post(f"{API}/alerts/1-s1/pcap", headers=admin).json()["request_id"]
    restarted = CentralNode(store, pcap_sink=pcaps)
    now = now_ns()  # the API stamps the request with the wall clock
    restarted.on_connect(now)
    assert rid in restarted.pcap.transfers
    for _ in range(restarted.pcap.max_rerequests + 1):
        now += restarted.pcap.stall_ns
        restarted.poll(now)
    assert client.get(f"{API}/pcap/{rid}", headers=admin).json()["state"] == "failed"


@pytest.mark.parametrize(
    "bad",
    [
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "a" * 36,
        "00000000-0000-0000-0000-00000000000/",
    ],
)
def test_request_ids_cannot_escape_the_pcap_directory(world, bad):
    client, admin, _engine, pcaps, _store = world
    with pytest.raises(PcapPathError):
        pcaps.path(bad)
    for path in (f"{API}/pcap/{bad}", f"{API}/pcap/{bad}/file"):
        response = client.get(path, headers=admin)
        assert response.status_code in (400, 404), path
    assert sorted(p.name for p in pcaps.root.iterdir()) == []


def test_unification_lists_every_sensor_of_the_same_traffic(central_store):  # noqa: F811
    same = {"source_address": "192.0.2.50", "destination_address": "198.51.100.9"}
    add_alerts(central_store, "s1", [snapshot(1, **same, first_detection_ns=T0)])
    add_alerts(central_store, "s2", [snapshot(8, **same, first_detection_ns=T0 + 9 * MIN)])
    add_alerts(central_store, "s3", [snapshot(4, **same, first_detection_ns=T0 + 25 * MIN)])
    add_alerts(central_store, "s4", [snapshot(6, **same, zone="z2", first_detection_ns=T0)])
    add_alerts(
        central_store,
        "s5",
        [snapshot(9, **same, status="closed", close_reason="manual", first_detection_ns=T0)],
    )
    engine = CentralNode(central_store)
    now = T0 + 30 * MIN
    off = MaintenanceSettings(auto_close_ns=None, retention_ns=None)
    assert engine.maintenance(now, off)["unified"] == 1
    assert engine.maintenance(now, off)["unified"] == 0  # idempotent
    client = TestClient(create_app(central_store, LocalCommander(engine)))
    reader = {"Authorization": f"Bearer {token(central_store, 'r', 'reader')}"}
    alerts = client.get(f"{API}/alerts", params={"sort": "id"}, headers=reader).json()["alerts"]
    assert [(a["id"], a["sensors"]) for a in alerts] == [
        ("1-s1", ["s1", "s2"]),
        ("4-s3", ["s3"]),
        ("6-s4", ["s4"]),
        ("9-s5", ["s5"]),
    ]
    assert [
        a["id"]
        for a in client.get(f"{API}/alerts", params={"sensor": "s2"}, headers=reader).json()[
            "alerts"
        ]
    ] == ["1-s1"]
    detail = client.get(f"{API}/alerts/8-s2", headers=reader).json()  # a member's id
    assert detail["id"] == "1-s1" and [x["id"] for x in detail["seen_by"]] == ["1-s1", "8-s2"]
    counts = client.get(f"{API}/alerts/groups", params={"by": "zone"}, headers=reader).json()
    assert {g["value"]: g["count"] for g in counts["groups"]} == {"z1": 3, "z2": 1}
    # triage of the unified alert goes to every sensor that saw it
    admin = {"Authorization": f"Bearer {token(central_store, 'a', 'admin')}"}
    result = client.post(
        f"{API}/alerts/status", json={"ids": ["1-s1"], "status": "active"}, headers=admin
    ).json()["results"][0]
    assert result["outcome"] == "applied" and len(result["commands"]) == 2
    with central_store.session() as s:
        assert sorted(s.scalars(select(Command.sensor))) == ["s1", "s2"]
        assert s.scalar(select(func.count()).select_from(AlertMember)) == 1


def test_auto_close_and_retention(central_store):  # noqa: F811
    now = T0 + 200 * DAY_NS
    add_alerts(
        central_store,
        "s1",
        [
            snapshot(1, first_detection_ns=now - 100 * DAY_NS, last_detection_ns=now - 1 * DAY_NS),
            snapshot(2, first_detection_ns=now - 80 * DAY_NS, last_detection_ns=now - 79 * DAY_NS),
            snapshot(
                3,
                first_detection_ns=now - 95 * DAY_NS,
                last_detection_ns=now - 94 * DAY_NS,
                status="active",
            ),
            snapshot(4, first_detection_ns=now - 10 * DAY_NS, last_detection_ns=now - 10 * DAY_NS),
        ],
    )
    engine = CentralNode(central_store)
    done = engine.maintenance(now, MaintenanceSettings(auto_close_ns=60 * DAY_NS))
    assert (done["auto_closed"], done["deleted"]) == (1, 2)  # 1 and 3 are past retention
    with central_store.session() as s:
        rows = {a.alert_id: (a.status, a.close_reason) for a in s.scalars(select(Alert))}
        assert rows == {2: ("closed", "auto"), 4: ("new", None)}
        audit = s.scalar(select(AuditEvent).where(AuditEvent.alert_id == 2))
        assert audit.actor == "system:auto-close" and audit.origin == "central"
