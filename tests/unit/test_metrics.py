"""Prometheus metrics: the address rule (loopback unless allowed), and the collectors reading
a real sensor store and a real central database, served over real HTTP on loopback."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from otwatch.central.store.sensors import touch_sensor
from otwatch.config import ConfigError, load_config
from otwatch.metrics import (
    CentralCollector,
    MetricsError,
    SensorCollector,
    parse_metrics_address,
    start_metrics,
)
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.integration.central_procs import sensor_with_pcaps
from tests.integration.mqtt_broker import free_port


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return samples(response.read().decode())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9464", ("127.0.0.1", 9464)),
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("localhost:9000", ("127.0.0.1", 9000)),
        ("[::1]:9464", ("::1", 9464)),
        ("127.0.0.2:1", ("127.0.0.2", 1)),
    ],
)
def test_loopback_addresses(text, expected):
    assert parse_metrics_address(text) == expected


@pytest.mark.parametrize("text", ["0.0.0.0:9464", "192.0.2.1:9464", "[::]:9464"])
def test_other_addresses_are_refused_unless_allowed(text):
    with pytest.raises(MetricsError, match="not a loopback address"):
        parse_metrics_address(text)
    assert parse_metrics_address(text, allow_remote=True)[1] == 9464


@pytest.mark.parametrize("text", ["", "host", "127.0.0.1:0", "127.0.0.1:70000", "name:80"])
def test_malformed_addresses(text):
    with pytest.raises(MetricsError, match="fix:"):
        parse_metrics_address(text)


def test_configuration_keys():
    cfg = load_config(None, env={"OTWATCH_METRICS_SYNC_LISTEN": "9465"})
    assert cfg.metrics.address("sync") == ("127.0.0.1", 9465)
    assert cfg.metrics.address("agent") is None
    with pytest.raises(ConfigError, match="sync_listen: refusing to serve metrics on 0.0.0.0"):
        load_config(None, env={"OTWATCH_METRICS_SYNC_LISTEN": "0.0.0.0:9465"})
    remote = {"OTWATCH_METRICS_SYNC_LISTEN": "0.0.0.0:9465", "OTWATCH_METRICS_ALLOW_REMOTE": "true"}
    assert load_config(None, env=remote).metrics.address("sync") == ("0.0.0.0", 9465)


def test_sensor_metrics_over_http(tmp_path):
    store = sensor_with_pcaps(tmp_path / "sensor", alerts=3)
    server = start_metrics(("127.0.0.1", free_port()), SensorCollector(store, "sync"))
    try:
        assert server is not None
        got = scrape(server.url)
    finally:
        server.stop()
        store.close()
    assert got[("otwatch_alerts", (("status", "new"),))] == 3
    assert got[("otwatch_alerts", (("status", "closed"),))] == 0
    assert got[("otwatch_outbox_depth", ())] == 3
    assert got[("otwatch_sync_connected", ())] == 0
    assert got[("otwatch_ring_bytes", ())] > 0
    assert got[("otwatch_evidence_backlog", ())] == 0
    assert got[("otwatch_health_error", ())] == 0
    info = [k for k in got if k[0] == "otwatch_info"]
    assert dict(info[0][1])["daemon"] == "sync"


def test_a_broken_store_is_reported_not_raised(tmp_path):
    store = sensor_with_pcaps(tmp_path / "sensor", alerts=1)
    store.close()
    (tmp_path / "sensor" / "otwatch.db").unlink()
    (tmp_path / "sensor" / "otwatch.db").mkdir()  # unreadable as a database
    collector = SensorCollector(store, "agent")
    names = {m.name: m.samples[0].value for m in collector.collect()}
    assert names == {"otwatch_health_error": 1}


def test_central_metrics_over_http(central_store):  # noqa: F811
    now = time.time_ns()
    with central_store.session() as s:
        touch_sensor(s, "a", now, online=True, health={"outbox_depth": 4})
        touch_sensor(s, "b", now, online=False, health={})
    server = start_metrics(("127.0.0.1", free_port()), CentralCollector(central_store))
    try:
        got = scrape(server.url)
    finally:
        server.stop()
    assert got[("otwatch_central_sensors", (("state", "online"),))] == 1
    assert got[("otwatch_central_sensors", (("state", "offline"),))] == 1
    assert got[("otwatch_central_sensor_up", (("sensor", "a"),))] == 1
    assert got[("otwatch_central_sensor_outbox_depth", (("sensor", "a"),))] == 4
    assert got[("otwatch_central_alerts", (("status", "new"),))] == 0


def test_a_busy_port_is_one_clear_error(tmp_path):
    store = sensor_with_pcaps(tmp_path / "sensor", alerts=1)
    first = start_metrics(("127.0.0.1", free_port()), SensorCollector(store, "agent"))
    try:
        port = first.server.server_address[1]
        with pytest.raises(MetricsError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            start_metrics(("127.0.0.1", port), SensorCollector(store, "agent"))
    finally:
        first.stop()
        store.close()
