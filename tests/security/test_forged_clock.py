"""Issue 15, item 1: a forged change clock (``status_hlc``/``severity_hlc``/command ``hlc``
of 2^63-1) must not wedge triage. Attacks against the real parts: a forged sensor publishing
on a real Mosquitto to a real ``otwatch central run`` (SQLite, HTTP API), and a forged
central sending commands to a real ``otwatch sync run``."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import create_engine, select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert as SensorAlert
from otwatch.alerts.catalog import load_catalog
from otwatch.central.store.models import Alert as CentralAlert
from otwatch.central.store.models import CentralState
from otwatch.demo.parts import wait_until
from otwatch.hlc import peer_limit
from otwatch.sync.protocol.topics import down_topic
from tests.factories import detection
from tests.integration.central_procs import CentralProcess, otwatch
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import SensorDaemon
from tests.security.forge import (
    MAX_HLC,
    Peer,
    api,
    birth,
    central_connected,
    command,
    event_batch,
    snapshot,
)

DAY_MS = 86_400_000


@pytest.fixture
def central(tmp_path, mosquitto):  # noqa: F811
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    made = otwatch("central", "token", "create", "--name", "ops", "--role", "admin",
                   "--db", db_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc = CentralProcess(tmp_path / "central", db_url, mosquitto.url).start()
    central_connected(proc)
    yield proc, made.stdout.strip()
    proc.stop()


def _alerts(url: str, token: str) -> set[str]:
    code, body = api(url, token, "GET", "/alerts")
    return {a["id"] for a in body["alerts"]} if code == 200 else set()


def test_a_forged_sensor_clock_does_not_wedge_triage_at_central(central, mosquitto):  # noqa: F811
    proc, admin = central
    peer = Peer(mosquitto.port)
    e1, e2 = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        answers = {down_topic("s1", "birth"), down_topic("s2", "birth")}
        for topic in answers:
            peer.subscribe(topic)
        for topic, body in (birth("s1", e1), birth("s2", e2)):
            peer.publish(topic, body)
        # central answers each birth once it knows the stream (a fixed wait raced under load)
        wait_until(lambda: {t for t, _p in peer.received} >= answers, 20, "central's answers")
        peer.publish(*event_batch("s1", e1, [snapshot(1)]))
        # s2 publishes on its own topic (the ACL allows it) an alert stamped at the column's end
        forged = snapshot(1, status_hlc=MAX_HLC, severity_hlc=MAX_HLC, site="", zone="")
        peer.publish(*event_batch("s2", e2, [forged]))
        wait_until(lambda: _alerts(proc.url, admin) >= {"1-s1", "1-s2"}, 20, "both alerts")
        # every later change, of either sensor's alert, still goes through
        for ids in (["1-s1"], ["1-s2"], ["1-s1", "1-s2"]):
            for path, body in (("/alerts/status", {"status": "closed"}),
                               ("/alerts/severity", {"severity": "high"}),
                               ("/alerts/severity", {"severity": "low"}),
                               ("/alerts/status", {"status": "active"})):  # fmt: skip
                code, answer = api(proc.url, admin, "POST", path, {"ids": ids, **body})
                assert code == 200, answer
                assert {r["outcome"] for r in answer["results"]} <= {"applied", "unchanged"}
        code, shown = api(proc.url, admin, "GET", "/alerts/1-s2")
        assert code == 200 and shown["status"] == "active" and shown["severity"] == "low"
    finally:
        peer.close()
    engine = create_engine(proc.db_url)
    with engine.connect() as conn:
        stamps = conn.execute(select(CentralAlert.status_hlc, CentralAlert.severity_hlc)).all()
        clock = conn.execute(select(CentralState.value).where(CentralState.key == "hlc")).scalar()
    engine.dispose()
    limit = peer_limit(time.time_ns() // 1_000_000 + DAY_MS)  # the skew (1 d) plus slack
    assert all(s < limit for row in stamps for s in row)
    assert clock["v"] < limit
    assert "security event clock_ahead: sensor s2" in proc.log.read_text()


def test_a_forged_command_clock_does_not_wedge_the_sync_daemon(tmp_path, mosquitto):  # noqa: F811
    store = open_store(tmp_path / "sensor")
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    manager.observe(detection(src="192.0.2.10"))
    manager.observe(detection(src="192.0.2.11"))
    manager.flush()
    daemon = SensorDaemon(tmp_path / "sensor", mosquitto.url).start()
    central = Peer(mosquitto.port)
    try:
        central.subscribe("otwatch/v1/s1/up/#")
        wait_until(lambda: central.messages("/up/birth"), 20, "the sensor's birth")

        def ack(command_id: str) -> dict | None:
            for message in central.messages("/up/acks"):
                for a in message["acks"]:
                    if a["command_id"] == command_id:
                        return a
            return None

        now_hlc = (time.time_ns() // 1_000_000) << 16
        sent = [
            command("s1", "status", 1, "closed", MAX_HLC),  # the forged one
            command("s1", "severity", 2, "high", now_hlc),
            command("s1", "severity", 1, "high", now_hlc + 1),
            command("s1", "status", 2, "closed", now_hlc + 2),
        ]
        for topic, body, command_id in sent:
            assert topic == down_topic("s1", "commands")
            central.publish(topic, body)
            wait_until(lambda c=command_id: ack(c), 20, f"the ack of {command_id}")
            assert ack(command_id)["outcome"] == "applied", ack(command_id)
        assert daemon.alive()
    finally:
        central.close()
        daemon.stop()
    with store.session() as s:
        rows = {a.id: a for a in s.scalars(select(SensorAlert))}
        assert (rows[1].status, rows[1].severity) == ("closed", "high")
        assert (rows[2].status, rows[2].severity) == ("closed", "high")
        limit = peer_limit(time.time_ns() // 1_000_000 + DAY_MS)
        assert all(r.status_hlc < limit and r.severity_hlc < limit for r in rows.values())
    store.close()
    assert "security event clock_ahead: command" in daemon.log_text()
