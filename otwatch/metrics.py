"""Prometheus metrics for the daemons, computed at scrape time from ``otwatch.health``.

Each daemon starts one small HTTP server (``prometheus-client``'s WSGI server on a thread)
with :func:`start_metrics`; a scrape runs :class:`SensorCollector` (``agent run``,
``sync run``) or :class:`CentralCollector` (``central run``), which read the same figures as
``otwatch status``: nothing is counted twice, and the hot paths are not touched. Names follow
Prometheus' guidelines: counters end in ``_total``, values are in base units (seconds, bytes),
rates are left to ``rate()``, and points in time are ``…_timestamp_seconds`` (Unix time), never
ages; ``docs/deploy.md`` lists every metric. The server
listens on a loopback address unless remote access is asked for explicitly (it has no
authentication).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otwatch import __version__
from otwatch.metrics_address import MetricsError, parse_metrics_address

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

__all__ = [
    "CentralCollector",
    "MetricsError",
    "MetricsServer",
    "SensorCollector",
    "parse_metrics_address",
    "start_metrics",
]

log = logging.getLogger(__name__)
_FIX = " — fix: "


# -- collectors ----------------------------------------------------------------------------


def _families() -> Any:
    try:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    except ImportError:  # pragma: no cover - the extra is part of the default install
        raise MetricsError(
            f"prometheus-client is not installed{_FIX}pip install 'otwatch[metrics]'"
        ) from None
    return GaugeMetricFamily, CounterMetricFamily


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    from otwatch.timeutil import parse_time_ns

    return parse_time_ns(iso) / 1e9


class SensorCollector:
    """Sensor figures (``sensor_health``) as Prometheus metrics; ``daemon`` labels
    ``otwatch_info`` so agent and sync scrapes of the same sensor can be told apart."""

    def __init__(self, store: Any, daemon: str) -> None:
        self.store = store
        self.daemon = daemon

    def collect(self) -> Iterator[Any]:
        from otwatch.health import sensor_health

        gauge, counter = _families()
        started = time.perf_counter()
        try:
            h = sensor_health(self.store)
        except Exception as exc:  # a locked or missing database must not kill the scrape
            log.warning("metrics: cannot read the sensor's figures: %s", exc)
            yield _single(gauge, "otwatch_health_error", "1 when the figures could not be read", 1)
            return
        info = gauge(
            "otwatch_info",
            "Version, daemon and sensor",
            labels=["version", "daemon", "sensor", "site", "zone"],
        )
        s = h["sensor"]
        info.add_metric([__version__, self.daemon, s["id"] or "", s["site"], s["zone"]], 1)
        yield info
        yield _single(gauge, "otwatch_health_error", "1 when the figures could not be read", 0)
        packets = counter("otwatch_capture_packets", "Frames captured", labels=["interface"])
        drops = counter(
            "otwatch_capture_kernel_drops", "Frames the kernel dropped", labels=["interface"]
        )
        for name, figures in h["capture"]["interfaces"].items():
            packets.add_metric([name], figures["received"])
            drops.add_metric([name], figures["kernel_drops"])
        yield from (packets, drops)
        capturing = h["capture"]["state"] == "capturing"
        yield _single(gauge, "otwatch_capture_up", "1 while the agent captures", int(capturing))
        yield _single(
            counter,
            "otwatch_capture_not_analysed_frames",
            "Frames recorded in the ring but not analysed (overload)",
            h["capture"]["not_analysed"],
        )
        alerts = gauge("otwatch_alerts", "Alerts on this sensor by status", labels=["status"])
        for status, count in h["alerts"].items():
            alerts.add_metric([status], count)
        yield alerts
        yield _single(
            gauge,
            "otwatch_learning_mode",
            "1 while learning the baseline",
            int(h["learning"]["active"]),
        )
        yield _single(
            gauge,
            "otwatch_learning_remaining_seconds",
            "Traffic time left to learn",
            h["learning"]["remaining_s"],
        )
        yield _single(
            gauge,
            "otwatch_outbox_depth",
            "Events central has not acknowledged",
            h["outbox"]["depth"],
        )
        yield _single(
            gauge,
            "otwatch_sync_connected",
            "1 while the sync daemon is connected",
            int(h["sync"]["state"] == "connected"),
        )
        last_ack = _ts(h["sync"]["last_ack"])
        if last_ack is not None:
            yield _single(
                gauge,
                "otwatch_sync_last_ack_timestamp_seconds",
                "When central last acknowledged events",
                last_ack,
            )
        for key, help_text in (
            ("bytes", "Bytes in the PCAP ring"),
            ("budget_bytes", "Disk budget of the PCAP ring"),
        ):
            if h["ring"][key] is not None:
                yield _single(gauge, f"otwatch_ring_{key}", help_text, h["ring"][key])
        yield _single(
            counter,
            "otwatch_ring_dropped_frames",
            "Frames not written to the ring",
            h["ring"]["dropped_frames"],
        )
        yield _single(
            gauge, "otwatch_evidence_bytes", "Bytes of per-alert evidence", h["evidence"]["bytes"]
        )
        yield _single(
            gauge,
            "otwatch_evidence_backlog",
            "Evidence windows waiting to be cut",
            h["evidence"]["backlog"],
        )
        if h["evidence"]["budget_bytes"] is not None:
            yield _single(
                gauge,
                "otwatch_evidence_budget_bytes",
                "Disk budget of the evidence",
                h["evidence"]["budget_bytes"],
            )
        yield from _forwarding(gauge, counter, self.store, "sensor")
        yield _single(
            gauge,
            "otwatch_scrape_duration_seconds",
            "Time to read the figures",
            time.perf_counter() - started,
        )


class CentralCollector:
    """Central figures (``central_health``) as Prometheus metrics."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def collect(self) -> Iterator[Any]:
        from sqlalchemy import func, select

        from otwatch.central.health import central_health, central_sensor_rows
        from otwatch.central.store.models import Alert

        gauge, _counter = _families()
        try:
            with self.store.session() as session:
                health = central_health(central_sensor_rows(session))
                by_status = dict(
                    session.execute(select(Alert.status, func.count()).group_by(Alert.status)).all()
                )
        except Exception as exc:
            log.warning("metrics: cannot read central's figures: %s", exc)
            yield _single(gauge, "otwatch_health_error", "1 when the figures could not be read", 1)
            return
        info = gauge("otwatch_info", "Version and daemon", labels=["version", "daemon"])
        info.add_metric([__version__, "central"], 1)
        yield info
        yield _single(gauge, "otwatch_health_error", "1 when the figures could not be read", 0)
        states = gauge("otwatch_central_sensors", "Sensors by state", labels=["state"])
        for state in ("online", "silent", "offline"):
            states.add_metric([state], health[state])
        yield states
        up = gauge("otwatch_central_sensor_up", "1 while the sensor is online", labels=["sensor"])
        seen = gauge(
            "otwatch_central_sensor_last_seen_timestamp_seconds",
            "When central last heard from the sensor (Unix time)",
            labels=["sensor"],
        )
        depth = gauge(
            "otwatch_central_sensor_outbox_depth",
            "Events the sensor still holds for central",
            labels=["sensor"],
        )
        for row in health["sensors"]:
            up.add_metric([row["sensor"]], int(row["state"] == "online"))
            last_seen = _ts(row["last_seen"])
            if last_seen is not None:
                seen.add_metric([row["sensor"]], last_seen)
            if isinstance(row["outbox_depth"], int):
                depth.add_metric([row["sensor"]], row["outbox_depth"])
        yield from (up, seen, depth)
        alerts = gauge(
            "otwatch_central_alerts", "Alerts held centrally by status", labels=["status"]
        )
        for status in ("new", "active", "closed"):
            alerts.add_metric([status], int(by_status.get(status, 0)))
        yield alerts
        yield from _forwarding(gauge, _counter, self.store, "central")


def _forwarding(gauge: Any, counter: Any, store: Any, kind: str) -> Iterator[Any]:
    """Forwarding queue depth, sent, failed and dropped per rule and target."""
    from otwatch.agent.store.forwarding import sensor_backend
    from otwatch.central.store.forwarding import central_backend
    from otwatch.forwarding.health import forwarding_families, forwarding_rows

    backend = central_backend(store) if kind == "central" else sensor_backend(store)
    try:
        rows = forwarding_rows(backend)
    except Exception as exc:  # an older schema or a locked database must not kill the scrape
        log.warning("metrics: cannot read forwarding figures: %s", exc)
        return
    yield from forwarding_families(gauge, counter, rows)


def _single(family: Any, name: str, help_text: str, value: float) -> Any:
    """A metric family (gauge or counter) with one unlabelled sample."""
    metric = family(name, help_text)
    metric.add_metric([], value)
    return metric


# -- the server ------------------------------------------------------------------------------


@dataclass
class MetricsServer:
    server: Any
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_metrics(address: tuple[str, int] | None, collector: Collector) -> MetricsServer | None:
    """Serve ``collector`` on ``address`` (from :func:`parse_metrics_address`); None: off."""
    if address is None:
        return None
    try:
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError:  # pragma: no cover
        raise MetricsError(
            f"prometheus-client is not installed{_FIX}pip install 'otwatch[metrics]'"
        ) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    host, port = address
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise MetricsError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}{_FIX}pick a free port"
        ) from None
    metrics = MetricsServer(server, thread)
    log.info("Prometheus metrics on %s", metrics.url)
    return metrics
