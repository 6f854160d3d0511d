"""Issue 15, item 6 and two smaller ones, against the real parts (Mosquitto on loopback,
``otwatch sync run`` and ``otwatch central run`` as subprocesses, SQLite files):

- a central started on a fresh database after the sensor connected learns the sensor from
  its retained status and gets its alerts, nothing restarted;
- a forged event of a higher sequence number (possible on an anonymous broker) no longer
  makes central skip the sensor's real events: the sensor sees an ack of events it never
  sent, keeps its rows and starts a new epoch;
- a message dropped for a wrong sensor id creates no sensor row (no phantom in /sensors).
"""

from __future__ import annotations

import uuid

import pytest

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.store.db import open_store
from otwatch.alerts.catalog import load_catalog
from otwatch.demo.parts import wait_until
from tests.factories import T0, detection
from tests.integration.central_procs import CentralProcess, otwatch
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import SensorDaemon, central_table, sensor_table
from tests.security.forge import Peer, api, central_connected, event_batch, snapshot


class Agent:
    """Plays the detection agent on the sensor store."""

    def __init__(self, data_dir) -> None:
        self.store = open_store(data_dir)
        self.manager = AlertManager(self.store, load_catalog(), sensor_id="s1")
        self.n = 0

    def alerts(self, count: int) -> None:
        for _ in range(count):
            self.n += 1
            self.manager.observe(detection(src=f"192.0.2.{self.n}", ts_ns=T0 + self.n))
        self.manager.flush()


def _token(db_url: str) -> str:
    made = otwatch("central", "token", "create", "--name", "ops", "--role", "admin",
                   "--db", db_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


@pytest.fixture
def agent(tmp_path):
    agent = Agent(tmp_path / "sensor")
    yield agent
    agent.store.close()


def test_a_new_central_on_a_fresh_database_learns_an_already_connected_sensor(
    tmp_path,
    mosquitto,  # noqa: F811
    agent,
):
    agent.alerts(5)
    first_db = f"sqlite:///{tmp_path / 'c1' / 'central.db'}"
    first = CentralProcess(tmp_path / "c1", first_db, mosquitto.url).start()
    daemon = SensorDaemon(tmp_path / "sensor", mosquitto.url).start()
    try:
        wait_until(lambda: len(central_table(first_db)) == 5, 30, "the first central")
        first.stop()
        agent.alerts(2)  # while no central runs
        fresh_db = f"sqlite:///{tmp_path / 'c2' / 'central.db'}"
        fresh = CentralProcess(tmp_path / "c2", fresh_db, mosquitto.url).start()
        try:
            # the sensor is neither restarted nor reconnected: its retained status is enough
            wait_until(
                lambda: central_table(fresh_db) == sensor_table(agent.store),
                30,
                "the fresh central to have every alert",
            )
            assert len(central_table(fresh_db)) == 7
            assert "unknown event stream; asking the sensor for its birth" in fresh.log.read_text()
        finally:
            fresh.stop()
        assert daemon.alive()
    finally:
        daemon.stop()


def test_an_ack_of_events_the_sensor_never_sent_starts_a_new_epoch(
    tmp_path,
    mosquitto,  # noqa: F811
    agent,
):
    agent.alerts(3)
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    central = CentralProcess(tmp_path / "central", db_url, mosquitto.url).start()
    central_connected(central)
    spy = Peer(mosquitto.port)
    spy.subscribe("otwatch/v1/s1/up/#")  # the broker is anonymous: anyone can read and write
    daemon = SensorDaemon(tmp_path / "sensor", mosquitto.url).start()
    try:
        wait_until(lambda: central_table(db_url) == sensor_table(agent.store), 30, "sync")
        epoch = spy.messages("/up/events")[-1]["epoch"]
        # forged events under the sensor's next sequence numbers move central's mark past them
        forged = [snapshot(900 + i, source_address=f"203.0.113.{i + 1}") for i in range(3)]
        spy.publish(*event_batch("s1", epoch, forged, first_seq=4))
        wait_until(lambda: "ack_unsent" in daemon.log_text(), 30, "the sensor to notice")
        agent.alerts(2)  # the sensor's real next events
        wanted = sensor_table(agent.store)
        wait_until(
            lambda: {k: v for k, v in central_table(db_url).items() if k < 900} == wanted,
            30,
            "the sensor's real alerts at central",
        )
        assert len(wanted) == 5
        assert "security event ack_unsent" in daemon.log_text()
    finally:
        daemon.stop()
        spy.close()
        central.stop()


def test_a_message_dropped_for_a_wrong_sensor_creates_no_sensor_row(tmp_path, mosquitto):  # noqa: F811
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    admin = _token(db_url)
    central = CentralProcess(tmp_path / "central", db_url, mosquitto.url).start()
    central_connected(central)
    peer = Peer(mosquitto.port)
    try:
        topic, body = event_batch("s1", str(uuid.uuid4()), [snapshot(1)])
        for ghost in ("ghost-1", "ghost-2"):
            peer.publish(topic.replace("/s1/", f"/{ghost}/"), body)  # payload says s1
        peer.publish("otwatch/v1/ghost-3/up/status", b"{not json")
        wait_until(lambda: central.log.read_text().count("dropped message") >= 3, 20, "drops")
        code, sensors = api(central.url, admin, "GET", "/sensors")
        assert code == 200 and sensors == []
    finally:
        peer.close()
        central.stop()
