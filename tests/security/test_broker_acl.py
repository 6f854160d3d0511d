"""The shipped Mosquitto configuration (``deploy/mosquitto/mosquitto.conf`` with its ACL),
certificates from ``deploy/certs/make-test-certs.sh``, on a loopback port: a sensor's
credentials cannot publish or subscribe to another sensor's topics nor publish to any
``down/`` topic, and a plain-text or certificate-less connection is refused."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.db import open_store
from otwatch.alerts.catalog import load_catalog
from otwatch.demo.parts import wait_until
from tests.factories import detection
from tests.integration.central_procs import CentralProcess, otwatch
from tests.integration.mqtt_broker import ACL, HOST, MOSQUITTO, free_port
from tests.integration.sync_procs import SensorDaemon, central_table, sensor_table
from tests.security.forge import api

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "mosquitto" / "mosquitto.conf"
SCRIPT = REPO / "deploy" / "certs" / "make-test-certs.sh"


def shipped_config(port: int, certs: Path, workdir: Path) -> str:
    """The shipped file with only its host paths and port changed (loopback, test files)."""
    replace = {
        "listener": f"listener {port} {HOST}",
        "cafile": f"cafile {certs / 'ca.crt'}",
        "certfile": f"certfile {certs / 'broker.crt'}",
        "keyfile": f"keyfile {certs / 'broker.key'}",
        "acl_file": f"acl_file {ACL}",
        "persistence_location": f"persistence_location {workdir}/",
        "log_dest": f"log_dest file {workdir / 'mosquitto.log'}",
    }
    lines = ["user root"]  # keep root: the test files are in root's temporary directory
    for line in SHIPPED.read_text().splitlines():
        key = line.split(" ", 1)[0]
        lines.append(replace.get(key, line))
    assert sum(line.startswith("listener ") for line in lines) == 1
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    if not Path(MOSQUITTO).exists() or shutil.which("openssl") is None:
        pytest.skip("mosquitto and openssl are needed")
    work = tmp_path_factory.mktemp("acl")
    certs = work / "tls"
    subprocess.run(["bash", str(SCRIPT), "-d", "2", str(certs), "s1", "s2"], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(shipped_config(port, certs, work))
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            with __import__("socket").create_connection((HOST, port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"mosquitto did not start: {proc.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.05)
    yield port, certs
    proc.terminate()
    proc.wait(10)


class Client:
    """A paho MQTT v5 client with a certificate; collects what it receives."""

    def __init__(
        self,
        port: int,
        certs: Path,
        name: str | None,
        *,
        tls: bool = True,
        client_id: str | None = None,
    ) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.suback: list[int] = []
        self.connected = threading.Event()
        self.disconnects = 0
        self.rc: int | None = None
        client_id = client_id or f"t-{name}-{time.monotonic_ns()}"
        c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        if tls:
            ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
            if name is not None:
                ctx.load_cert_chain(str(certs / f"{name}.crt"), str(certs / f"{name}.key"))
            c.tls_set_context(ctx)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        c.on_subscribe = lambda _c, _u, _mid, codes, _p: self.suback.extend(r.value for r in codes)
        self.c = c
        try:
            c.connect(HOST, port, keepalive=10)
        except (OSError, ssl.SSLError):
            self.rc = -1
            return
        c.loop_start()
        self.connected.wait(5)

    def _on_connect(self, _c, _u, _flags, rc, _props) -> None:  # type: ignore[no-untyped-def]
        self.rc = rc.value
        if rc.value == 0:
            self.connected.set()

    def _on_disconnect(self, *_args: object) -> None:
        self.disconnects += 1

    def publish(self, topic: str, payload: bytes) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def subscribe(self, topic: str) -> int:
        self.suback.clear()
        self.c.subscribe(topic, qos=1)
        deadline = time.monotonic() + 5
        while not self.suback and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.suback[0]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def settle() -> None:
    time.sleep(0.5)  # QoS 1 round trips on loopback; only bounds how long we wait for nothing


def test_a_sensor_cannot_touch_another_sensors_topics_or_any_down_topic(broker):
    port, certs = broker
    central, s1, s2 = (Client(port, certs, n) for n in ("otwatch-central", "s1", "s2"))
    try:
        assert central.rc == s1.rc == s2.rc == 0
        assert central.subscribe("otwatch/v1/+/up/#") < 0x80
        assert s2.subscribe("otwatch/v1/s2/down/#") < 0x80
        assert s1.subscribe("otwatch/v1/s1/down/#") < 0x80
        # Mosquitto may grant these subscriptions but delivers nothing the ACL does not let
        # s1 read: what matters is what s1 receives (checked below)
        for topic in ("otwatch/v1/s2/down/#", "otwatch/v1/s2/up/#", "otwatch/v1/+/up/#", "#"):
            s1.subscribe(topic)
        s2.publish("otwatch/v1/s2/up/events", b"from-s2")
        # publishing: only its own up/ tree
        s1.publish("otwatch/v1/s1/up/events", b"genuine")
        for topic in ("otwatch/v1/s2/up/events", "otwatch/v1/s2/down/commands",
                      "otwatch/v1/s1/down/commands", "otwatch/v1/s1/down/birth"):  # fmt: skip
            s1.publish(topic, b"forged")
        # control: central's commands to s2 reach s2 (and nobody else)
        central.publish("otwatch/v1/s2/down/commands", b"for-s2")
        settle()
        assert sorted(central.received) == [
            ("otwatch/v1/s1/up/events", b"genuine"),
            ("otwatch/v1/s2/up/events", b"from-s2"),
        ]
        assert s2.received == [("otwatch/v1/s2/down/commands", b"for-s2")]
        assert s1.received == []
    finally:
        for c in (central, s1, s2):
            c.close()


def test_plain_text_and_certificate_less_connections_are_refused(broker):
    port, certs = broker
    plain = Client(port, certs, "s1", tls=False)
    assert plain.rc != 0 and not plain.connected.is_set()
    anonymous = Client(port, certs, None)  # TLS, but no client certificate
    assert anonymous.rc != 0 and not anonymous.connected.is_set()


def test_a_sensor_cannot_take_over_another_clients_id_or_session(broker):
    """Issue 15, item 3: with s1's certificate, asking for central's or s2's client id used
    to kick that client off and take over its persistent session. The shipped config makes
    the client id the certificate's identity: the genuine clients stay connected and keep
    receiving their traffic, and s1 receives none of it."""
    port, certs = broker
    central = Client(port, certs, "otwatch-central", client_id="otwatch-central")
    s2 = Client(port, certs, "s2", client_id="otwatch-sensor-s2")
    thieves: list[Client] = []
    try:
        assert central.rc == s2.rc == 0
        assert central.subscribe("otwatch/v1/+/up/#") < 0x80
        assert s2.subscribe("otwatch/v1/s2/down/#") < 0x80
        for stolen in ("otwatch-central", "otwatch-sensor-s2", "s2"):
            thief = Client(port, certs, "s1", client_id=stolen)
            thieves.append(thief)
            assert thief.rc == 0  # connects, but as itself (client id "s1")
        settle()
        assert central.disconnects == 0 and s2.disconnects == 0
        # both genuine sessions still work, and none of their traffic reaches s1
        s2.publish("otwatch/v1/s2/up/events", b"from-s2")
        central.publish("otwatch/v1/s2/down/commands", b"for-s2")
        settle()
        assert ("otwatch/v1/s2/up/events", b"from-s2") in central.received
        assert s2.received == [("otwatch/v1/s2/down/commands", b"for-s2")]
        assert all(t.received == [] for t in thieves)
    finally:
        for c in (central, s2, *thieves):
            c.close()


def test_the_sync_daemon_and_central_work_through_the_shipped_config(broker, tmp_path):
    """Their client ids are now their certificates' identities: both still connect, alerts
    reach central and central's change reaches the sensor."""
    port, certs = broker
    url = f"mqtts://127.0.0.1:{port}"

    def tls(name: str) -> list[str]:
        return ["--tls-ca", str(certs / "ca.crt"), "--tls-cert", str(certs / f"{name}.crt"),
                "--tls-key", str(certs / f"{name}.key")]  # fmt: skip

    store = open_store(tmp_path / "sensor")
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    for i in range(3):
        manager.observe(detection(src=f"192.0.2.{10 + i}"))
    manager.flush()
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    made = otwatch("central", "token", "create", "--name", "ops", "--role", "admin",
                   "--db", db_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    central = CentralProcess(tmp_path / "central", db_url, url, *tls("otwatch-central")).start()
    daemon = SensorDaemon(tmp_path / "sensor", url, *tls("s1")).start()
    try:
        wait_until(lambda: central_table(db_url) == sensor_table(store), 30, "alerts at central")
        admin = made.stdout.strip()
        code, answer = api(central.url, admin, "POST", "/alerts/status",
                           {"ids": ["1-s1"], "status": "closed"})  # fmt: skip
        assert code == 200 and answer["results"][0]["outcome"] == "applied", answer
        wait_until(lambda: sensor_table(store)[1][0] == "closed", 30, "the close at the sensor")
    finally:
        daemon.stop()
        central.stop()
        store.close()
