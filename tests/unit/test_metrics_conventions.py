"""Every daemon's Prometheus exposition follows the naming conventions and is documented.

The agent and the sync daemon serve ``SensorCollector`` (labelled with their name), central
serves ``CentralCollector``; each is scraped over real HTTP from the server the daemons start
(``start_metrics``), in both formats, and parsed with ``prometheus_client``'s parsers (the
OpenMetrics one rejects, among others, counters without ``_total`` samples). The families
must match the table in ``docs/deploy.md`` name for name, with the same type.
"""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from otwatch.central.store.sensors import touch_sensor
from otwatch.metrics import CentralCollector, SensorCollector, start_metrics
from tests.centraldb import central_store, central_url, pg_database, pg_url  # noqa: F401
from tests.integration.central_procs import sensor_with_pcaps
from tests.integration.mqtt_broker import free_port

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
ROW = re.compile(r"^\| `(otwatch_[a-z_]+)(?:\{[a-z_,]*\})?` \| (\w+) \| ([a-z, ]+) \| .+ \|$", re.M)


def documented() -> dict[str, tuple[str, set[str]]]:
    """``family name -> (type, daemons)`` from the metrics table in docs/deploy.md, which
    names samples (a counter's family ``x`` has the sample ``x_total``)."""
    table = {}
    for name, kind, daemons in ROW.findall(DOCS.read_text()):
        names = {"agent", "sync", "central"} if daemons == "all" else set(daemons.split(", "))
        assert (kind == "counter") == name.endswith("_total"), name
        table[name.removesuffix("_total")] = (kind, names)
    return table


def scrape(collector) -> dict[str, dict[str, str]]:
    """``format -> {family name: type}`` of one scrape in each exposition format."""
    server = start_metrics(("127.0.0.1", free_port()), collector)
    assert server is not None
    out = {}
    try:
        for fmt, accept, parse in (("text", "text/plain", parse_text),
                                   ("openmetrics", OPENMETRICS, parse_openmetrics)):  # fmt: skip
            request = urllib.request.Request(server.url, headers={"Accept": accept})
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read().decode()
            out[fmt] = {f.name: f.type for f in parse(body)}
    finally:
        server.stop()
    return out


def check_conventions(families: dict[str, str]) -> list[str]:
    problems = []
    for name, kind in families.items():
        if kind not in ("counter", "gauge"):
            problems.append(f"{name}: type {kind}")
        if re.search(r"_(pps|per_second|rate|age|age_seconds|ms|milliseconds|kb|mb)(_|$)", name):
            problems.append(f"{name}: not in base units, or a rate or an age")
        if name.endswith("_total"):
            problems.append(f"{name}: family name with _total (a gauge, or doubled suffix)")
    return problems


@pytest.fixture(scope="module")
def sensor_scrapes(tmp_path_factory):
    store = sensor_with_pcaps(tmp_path_factory.mktemp("sensor"), alerts=2)
    try:
        yield {d: scrape(SensorCollector(store, d)) for d in ("agent", "sync")}
    finally:
        store.close()


@pytest.mark.parametrize("daemon", ["agent", "sync"])
def test_sensor_daemons(sensor_scrapes, daemon):
    got = sensor_scrapes[daemon]
    assert got["text"] == got["openmetrics"]
    families = got["openmetrics"]
    assert check_conventions(families) == []
    expected = {n: k for n, (k, daemons) in documented().items() if daemon in daemons}
    # Families whose figures are absent on a fresh store (no ack yet, no budget) may be missing.
    optional = {
        "otwatch_sync_last_ack_timestamp_seconds",
        "otwatch_ring_budget_bytes",
        "otwatch_evidence_budget_bytes",
    }
    assert set(families) - set(expected) == set(), "exposed but not documented"
    assert set(expected) - set(families) - optional == set(), "documented but not exposed"
    assert {n: families[n] for n in families} == {n: expected[n] for n in families}
    assert families["otwatch_ring_dropped_frames"] == "counter"
    assert families["otwatch_capture_not_analysed_frames"] == "counter"


def test_central_daemon(central_store):  # noqa: F811
    with central_store.session() as s:
        touch_sensor(s, "a", time.time_ns(), online=True, health={"outbox_depth": 1})
    got = scrape(CentralCollector(central_store))
    assert got["text"] == got["openmetrics"]
    families = got["openmetrics"]
    assert check_conventions(families) == []
    expected = {n: k for n, (k, daemons) in documented().items() if "central" in daemons}
    assert families == expected


def test_central_last_seen_is_a_timestamp(central_store):  # noqa: F811
    seen = time.time_ns() - 90 * 10**9
    with central_store.session() as s:
        touch_sensor(s, "a", seen, online=True, health={})
    server = start_metrics(("127.0.0.1", free_port()), CentralCollector(central_store))
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            body = response.read().decode()
    finally:
        server.stop()
    [value] = [s.value for f in parse_text(body) for s in f.samples
               if s.name == "otwatch_central_sensor_last_seen_timestamp_seconds"]  # fmt: skip
    assert value == pytest.approx(seen / 1e9, abs=1.0)


def test_the_checks_can_fail():
    assert check_conventions({"otwatch_capture_rate_pps": "gauge"})
    assert check_conventions({"otwatch_central_sensor_last_seen_age_seconds": "gauge"})
    assert check_conventions({"otwatch_ring_dropped_frames_total": "gauge"})
    assert "otwatch_ring_dropped_frames_total" not in documented()
    assert documented()["otwatch_ring_dropped_frames"] == ("counter", {"agent", "sync"})
