"""Two central instances share one sensor's stream through an MQTT v5 shared subscription
($share/…) on a real Mosquitto, writing to one PostgreSQL: every alert lands exactly once,
also when one instance stops mid-stream."""

from __future__ import annotations

import pytest

from otwatch.sync.transport import BrokerConfig
from tests.centraldb import pg_database, pg_url  # noqa: F401
from tests.integration.central_procs import NodeThread
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import SensorDaemon, central_table, sensor_table, wait_until
from tests.integration.test_sync_mqtt import Agent


@pytest.mark.postgres
def test_two_instances_share_the_ingest_without_loss_or_duplicates(tmp_path, mosquitto, pg_url):  # noqa: F811
    agent = Agent(tmp_path / "sensor")
    cfg = BrokerConfig().with_url(mosquitto.url)
    nodes = [
        NodeThread(pg_url, cfg, client_id=f"central-{i}", share_group="otwatch") for i in (1, 2)
    ]
    daemon = SensorDaemon(tmp_path / "sensor", mosquitto.url)
    try:
        for node in nodes:
            node.start().wait_connected()
        daemon.start()
        agent.alerts(1500)
        wait_until(lambda: len(central_table(pg_url)) >= 1500, 60, "the first 1500 alerts")
        agent.alerts(20)  # a few one by one, as detections come
        nodes[1].stop()  # one instance leaves mid-stream
        agent.alerts(1000)
        wait_until(
            lambda: sensor_table(agent.store) == central_table(pg_url),
            90,
            "central equal to the sensor",
        )
        assert len(central_table(pg_url)) == 2520  # central_table also asserts no duplicates
        processed = [n.engine.stats["events"] for n in nodes]
        assert all(p > 0 for p in processed), processed  # both instances did share the work
        for node in nodes:
            assert sum(node.engine.dropped.values()) == 0, node.engine.dropped
    finally:
        daemon.stop()
        for node in nodes:
            node.stop()
        agent.close()
