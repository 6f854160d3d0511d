"""Sensor ⇄ central through a real Mosquitto on loopback, with the sync daemon as a real
``otwatch sync run`` subprocess. Every test ends with the central alert table equal to the
sensor's: no loss, no duplicates."""

from __future__ import annotations

import json
import uuid

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.db import open_store
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action
from otwatch.central.commands import Unchecked
from otwatch.central.store import search_backlog
from otwatch.central.store.models import Command
from otwatch.sync.transport import BrokerConfig
from tests.factories import T0, detection
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import (
    CentralThread,
    SensorDaemon,
    bulk_alerts,
    central_table,
    sensor_table,
    wait_until,
)

EXC = "modbus_exception"


class Agent:
    """Plays the detection agent on the sensor store: alerts and local changes."""

    def __init__(self, data_dir) -> None:
        self.store = open_store(data_dir)
        self.manager = AlertManager(self.store, load_catalog(), sensor_id="s1")
        self.n = 0

    def alerts(self, count: int) -> None:
        """``count`` new alerts; large numbers go in bulk (see ``bulk_alerts``)."""
        if count > 50:
            bulk_alerts(self.store, self.n + 1, count, T0)
            self.n += count
            return
        for _ in range(count):
            self.n += 1
            host = f"192.0.2.{self.n % 250 + 1}"
            self.manager.observe(
                detection(src=host, dst=f"198.51.100.{self.n // 250 % 250 + 1}", ts_ns=T0 + self.n)
            )
        self.manager.flush()

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def world(tmp_path):
    agent = Agent(tmp_path / "sensor")
    parts: list = []
    yield tmp_path, agent, parts
    for part in parts:
        part.stop()
    agent.close()


def equal(agent: Agent, db_url: str) -> bool:
    try:
        return sensor_table(agent.store) == central_table(db_url)
    except OperationalError:
        return False


def start(tmp_path, broker, parts, *daemon_args: str, cfg: BrokerConfig | None = None):
    db_url = f"sqlite:///{tmp_path / 'central.db'}"
    central = CentralThread(db_url, cfg or BrokerConfig().with_url(broker.url)).start()
    parts.append(central)
    central.wait_connected()
    daemon = SensorDaemon(tmp_path / "sensor", broker.url, *daemon_args).start()
    parts.append(daemon)
    return db_url, central, daemon


def test_end_to_end_both_directions(world, mosquitto):  # noqa: F811
    tmp_path, agent, parts = world
    agent.alerts(300)
    db_url, central, daemon = start(tmp_path, mosquitto, parts)
    wait_until(lambda: equal(agent, db_url), 30, "the first 300 alerts")

    # Ingest went quiet: central fills the search index with what it wrote (search_backlog).
    def indexed() -> tuple[int, int]:
        with central.store.engine.connect() as conn:  # a fresh snapshot each time
            docs = conn.exec_driver_sql("SELECT count(*) FROM alerts_search_docsize").scalar()
            return search_backlog.pending_count(conn), docs

    wait_until(lambda: indexed() == (0, 300), 10, "the search index caught up")
    # Sensor-side change and new detections on an existing alert.
    agent.manager.apply([5], Action.SET_STATUS, actor="ana", value="active")
    agent.manager.observe(detection(src="192.0.2.6", dst="198.51.100.1", ts_ns=T0 + 5))
    agent.manager.flush()
    # Central-side change, a sensor-only one sent anyway, a learn of a non-learnable type.
    closed = central.issue("s1", "status", alert_id=7, value="closed", actor="admin")
    muted = central.issue("s1", Unchecked("mute", alert_id=8), actor="admin")
    wait_until(lambda: equal(agent, db_url) and sensor_table(agent.store)[7][0] == "closed", 30,
               "changes both ways")  # fmt: skip
    assert sensor_table(agent.store)[5][0] == "active"
    with central.store.session() as s:
        wait_until(lambda: s.get(Command, muted.command_id).status != "pending", 10, "mute ack")
    with central.store.session() as s:
        assert s.get(Command, closed.command_id).status == "applied"
        cmd = s.get(Command, muted.command_id)
        assert (cmd.status, cmd.outcome) == ("rejected", "refused")
    assert daemon.alive()


@pytest.mark.parametrize("persistence", [False, True], ids=["no-persistence", "persistence"])
def test_broker_killed_and_restarted_mid_stream(world, make_broker, persistence):  # noqa: F811
    tmp_path, agent, parts = world
    broker = make_broker(persistence=persistence)
    db_url, _central, daemon = start(tmp_path, broker, parts)
    agent.alerts(500)
    wait_until(lambda: len(central_table(db_url)) > 0, 20, "some alerts centrally")
    broker.kill()  # mid-stream, nothing flushed
    agent.alerts(1500)
    agent.manager.apply(list(range(1, 40)), Action.SET_SEVERITY, actor="ana", value="high")
    broker.start()  # same port
    agent.alerts(500)
    wait_until(lambda: equal(agent, db_url), 60, "all 2500 alerts after the broker restart")
    assert len(central_table(db_url)) == 2500
    assert daemon.alive()


def test_sync_daemon_kill9_mid_batch(world, mosquitto):  # noqa: F811
    tmp_path, agent, parts = world
    db_url, _central, daemon = start(tmp_path, mosquitto, parts)
    agent.alerts(4000)
    wait_until(lambda: len(central_table(db_url)) > 0, 20, "the stream to start")
    daemon.kill9()
    partial = len(central_table(db_url))
    agent.alerts(500)
    daemon.start()
    wait_until(lambda: equal(agent, db_url), 60, "all alerts after the restart")
    assert partial < 4500 and len(central_table(db_url)) == 4500


def test_central_down_for_a_while(world, mosquitto):  # noqa: F811
    tmp_path, agent, parts = world
    db_url, central, _daemon = start(tmp_path, mosquitto, parts)
    agent.alerts(200)
    wait_until(lambda: equal(agent, db_url), 20, "the first alerts")
    central.stop()
    agent.alerts(1500)
    agent.manager.apply([1, 2, 3], Action.SET_STATUS, actor="ana", value="closed")
    central.start()
    central.wait_connected()
    wait_until(lambda: equal(agent, db_url), 60, "everything queued while central was down")
    assert len(central_table(db_url)) == 1700


def _raw_client(broker, **tls) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{uuid.uuid4().hex[:8]}",
                         protocol=paho.MQTTv5)  # fmt: skip
    if tls:
        client.tls_set(**tls)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def test_hostile_input_is_dropped_counted_and_never_fatal(world, mosquitto):  # noqa: F811
    tmp_path, agent, parts = world
    agent.alerts(3)
    agent.manager.observe(
        detection(type_id=EXC, src="192.0.2.99", function_code=1, exception_code=2)
    )
    agent.manager.flush()  # alert 4: a type that cannot be learned
    db_url, central, daemon = start(tmp_path, mosquitto, parts, "--status-interval", "0.3")
    wait_until(lambda: equal(agent, db_url), 20, "the first alerts")
    before = sensor_table(agent.store)
    raw = _raw_client(mosquitto)
    down = "otwatch/v1/s1/down/commands"

    def cmd(kind, alert_id=1, **extra):
        return {"id": str(uuid.uuid4()), "kind": kind, "alert_id": alert_id, "actor": "x",
                "issued_ns": 1, "hlc": 1, **extra}  # fmt: skip

    replayed = cmd("severity", value="low", hlc=10**18)

    def batch(sensor_id: str, *commands: dict) -> bytes:
        return json.dumps({"v": 1, "sensor_id": sensor_id, "commands": list(commands)}).encode()

    forged_events = {
        "v": 1,
        "sensor_id": "s9",
        "epoch": str(uuid.uuid4()),
        "events": [{"seq": 99, "id": str(uuid.uuid4()), "kind": "alert", "ts_ns": 0}],
    }
    hostile = [
        (down, b"{this is not json"),
        (down, json.dumps({"v": 7, "sensor_id": "s1", "commands": [cmd("status")]}).encode()),
        (down, b'{"v": 1, "sensor_id": "s1", "commands": [' + b" " * 70_000 + b"]}"),
        (down, batch("s1", cmd("selfdestruct"))),
        (down, batch("s1", cmd("status", 4242, value="closed"))),
        (down, batch("s2", cmd("status", value="closed"))),
        (down, batch("s1", cmd("learn", 4))),
        (down, batch("s1", replayed)),
        (down, batch("s1", replayed)),
        ("otwatch/v1/s1/up/events", b"\x00\x01garbage"),
        ("otwatch/v1/s1/up/events", json.dumps(forged_events).encode()),
        ("otwatch/v1/s1/up/birth", b'{"v": 1}'),
    ]  # fmt: skip
    for topic, payload in hostile:
        raw.publish(topic, payload, qos=1).wait_for_publish(5)
    statuses: list[dict] = []
    watcher = _raw_client(mosquitto)
    watcher.on_message = lambda c, u, m: statuses.append(json.loads(m.payload))
    watcher.subscribe("otwatch/v1/s1/up/status", qos=1)

    def counted() -> dict | None:
        for status in reversed(statuses):
            dropped = status.get("health", {}).get("dropped", {})
            if dropped.get("replayed_command"):
                return dropped
        return None

    dropped = wait_until(counted, 20, "the health status to count the hostile input")
    for reason in ("malformed", "version", "oversized", "unknown_command", "unknown_alert",
                   "wrong_sensor", "replayed_command", "rejected_refused"):  # fmt: skip
        assert dropped.get(reason, 0) >= 1, (reason, dropped)
    wait_until(lambda: central.engine.dropped["malformed"] >= 1, 10, "central drops garbage")
    assert central.engine.dropped["wrong_sensor"] >= 1 and central.engine.dropped["invalid"] >= 1
    assert daemon.alive()
    table = sensor_table(agent.store)
    assert table[1][2] == "low"  # the one valid (replayed) command applied once
    assert {k: v for k, v in table.items() if k != 1} == {k: v for k, v in before.items() if k != 1}
    assert table[4][:2] == ("new", None)  # learn of a non-learnable type refused
    agent.alerts(10)
    wait_until(lambda: equal(agent, db_url), 20, "sync still working after the hostile input")
    raw.loop_stop()
    watcher.loop_stop()


def test_tls_client_certificates_and_acl(world, make_broker):  # noqa: F811
    tmp_path, agent, parts = world
    broker = make_broker(tls=True)
    certs = broker.certs
    s1_cert, s1_key = certs.issue("s1")
    c_cert, c_key = certs.issue("otwatch-central")
    cfg = BrokerConfig(tls_ca=certs.ca, tls_cert=c_cert, tls_key=c_key).with_url(broker.url)
    agent.alerts(50)
    db_url, central, _daemon = start(
        tmp_path, broker, parts,
        "--tls-ca", str(certs.ca), "--tls-cert", str(s1_cert), "--tls-key", str(s1_key),
        cfg=cfg,
    )  # fmt: skip
    wait_until(lambda: equal(agent, db_url), 30, "alerts over TLS")
    # Sensor s1 may not speak for s2: the broker refuses it, central never sees it.
    _s2_cert, _s2_key = certs.issue("s2")
    raw = _raw_client(broker, ca_certs=str(certs.ca), certfile=str(s1_cert), keyfile=str(s1_key))
    forged = {"v": 1, "sensor_id": "s2", "state": "online", "version": "x", "ts_ns": 1}
    raw.publish("otwatch/v1/s2/up/status", json.dumps(forged).encode(), qos=1).wait_for_publish(5)
    agent.alerts(5)
    wait_until(lambda: equal(agent, db_url), 20, "later alerts")
    from otwatch.central.store.models import Sensor

    with central.store.session() as s:
        assert s.scalars(select(Sensor.id)).all() == ["s1"]
    raw.loop_stop()


def test_username_password_and_acl(world, make_broker):  # noqa: F811
    tmp_path, agent, parts = world
    broker = make_broker(users={"s1": "sensor-secret", "otwatch-central": "central-secret"})
    (tmp_path / "pw").write_text("sensor-secret\n")
    (tmp_path / "pw").chmod(0o600)  # a password file others may read is refused
    cfg = BrokerConfig(username="otwatch-central", password="central-secret").with_url(broker.url)
    agent.alerts(20)
    db_url, _central, _daemon = start(
        tmp_path, broker, parts, "--username", "s1", "--password-file", str(tmp_path / "pw"),
        cfg=cfg,
    )  # fmt: skip
    wait_until(lambda: equal(agent, db_url), 30, "alerts with password auth")
