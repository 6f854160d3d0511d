"""Floods: a scan of many distinct flows and an alert storm leave the agent within its memory
bound, alerting rate-limited per type (one "Multiple violations" aggregate per type instead of
a runaway alert table), and the sync still drains the storm's outbox to a real central.

Default run: a 50,000-flow scan and the full 100,000-alert storm (it takes seconds), synced
through a private Mosquitto. ``slow``: the 1,000,000-flow scan (``OTWATCH_FLOOD_FLOWS``).
Figures go to ``OTWATCH_FLOOD_REPORT`` (JSON lines) when set.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections import Counter

import pytest
from sqlalchemy import func, select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.alerts.ratelimit import DEFAULT_RATE_LIMIT, aggregate_key
from otwatch.agent.capture.pcapwrite import pcap_record, write_pcap_header
from otwatch.agent.engines.detection import DetectionFactory
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert, OutboxEvent
from otwatch.agent.store.models_devices import DeviceRow
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import DetectionOutcome
from otwatch.sync.transport import BrokerConfig
from tests.factories import SEC, T0
from tests.fuzz.frames import env_count, rss_mib
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import (
    CentralThread,
    SensorDaemon,
    central_table,
    sensor_table,
    wait_until,
)

AGENT_RSS_BOUND_MIB = 300  # issue 3: the agent with 1M flows
SCANNERS = 500
"""More scanners than the rate limit lets alert per type and window: the rest fold."""
STORM_TYPES = (
    "unpermitted_usage_of_modbus_function_code",
    "modbus_exception",
    "ftp_login_failed",
    "internet_access_detected",
)


def report(**figures) -> None:
    out = os.environ.get("OTWATCH_FLOOD_REPORT")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(figures) + "\n")


# --- scan: distinct flows through the real agent (``otwatch agent replay``) ---------------


def scan_capture(path, flows: int) -> None:
    """``flows`` TCP SYNs, each a new flow: ``SCANNERS`` hosts sweep 10.0.0.0/8 addresses and
    ports (10 µs apart, so the whole scan is a few seconds of traffic time)."""
    eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
    ip_hdr = struct.Struct("!BBHHHBBH4s4s")
    tcp = struct.Struct("!HHIIBBHHH")
    with open(path, "wb") as f:
        write_pcap_header(f, 1, nanosecond=True)
        out = []
        for i in range(flows):
            k = i % SCANNERS
            src = bytes((192, 0, 2, k) if k < 256 else (198, 51, 100, k - 256))
            dst = bytes((10, i >> 16 & 255, i >> 8 & 255, i & 255))
            ip = ip_hdr.pack(0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src, dst)
            seg = tcp.pack(40000 + i % 20000, (502, 102, 44818, 20000, 80, 22)[i % 6], i, 0,
                           0x50, 0x02, 1024, 0, 0)  # fmt: skip
            frame = eth + ip + seg
            out.append(pcap_record(T0 + i * 10_000, len(frame), frame))
            if len(out) >= 8192:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))


def run_scan(tmp_path, flows: int) -> None:
    capture = tmp_path / "scan.pcap"
    scan_capture(capture, flows)
    data_dir = tmp_path / "agent"
    cmd = [sys.executable, "-m", "otwatch.cli", "--data-dir", str(data_dir), "agent", "replay",
           str(capture), "--learning-period", "0s", "--format", "json"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _pid, status, _usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, err
    # the agent's own peak: rusage's maxrss would include what this (pytest) process had
    # resident when it started the agent
    summary = json.loads(out)
    peak_mib = summary["peak_rss_bytes"] / 2**20
    store = open_store(data_dir)
    try:
        with store.session() as s:
            per_type = Counter(s.scalars(select(Alert.type_id)))
            aggregates = dict(
                s.execute(
                    select(Alert.type_id, Alert.detections).where(
                        Alert.dedup_key.in_([aggregate_key(t) for t in per_type])
                    )
                ).all()
            )
            outbox = s.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.kind != "device")
            )
            targets = s.scalar(
                select(func.count()).select_from(DeviceRow).where(DeviceRow.key.startswith("10."))
            )
            devices = s.scalar(select(func.count()).select_from(DeviceRow))
    finally:
        store.close()
    report(item="scan", flows=flows, packets=summary["packets"], seconds=summary["seconds"],
           peak_rss_mib=round(peak_mib), alerts=sum(per_type.values()), per_type=dict(per_type),
           folded=aggregates, outbox=outbox, devices=devices)  # fmt: skip
    assert summary["packets"] == flows
    assert peak_mib <= AGENT_RSS_BOUND_MIB, f"peak RSS {peak_mib:.0f} MiB"
    # Traffic time spans one or two rate windows: per type at most limit per window, plus the
    # aggregate; whatever the flow count, the alert table stays small.
    windows = flows * 10_000 // DEFAULT_RATE_LIMIT.window_ns + 2
    for type_id, count in per_type.items():
        assert count <= DEFAULT_RATE_LIMIT.limit * windows + 1, (type_id, count)
    assert outbox == sum(per_type.values())
    # the sweep's targets (10/8) never answered: none of them is a device, the scanners are
    assert targets == 0 and 0 < devices <= SCANNERS
    assert aggregates and all(n > 0 for n in aggregates.values())  # some folded, counted


def test_scan_of_distinct_flows_stays_bounded(tmp_path):
    run_scan(tmp_path, env_count("OTWATCH_FLOOD_FLOWS_SHORT", 50_000))


@pytest.mark.slow
def test_scan_of_a_million_distinct_flows_stays_within_the_memory_bound(tmp_path):
    run_scan(tmp_path, env_count("OTWATCH_FLOOD_FLOWS", 1_000_000))


# --- alert storm: 100,000 distinct alerts in a minute, then sync drains it ------------------


def alert_storm(store, count: int) -> tuple[AlertManager, Counter]:
    """``count`` distinct new alerts over ``STORM_TYPES`` within 60 s of traffic time, flushed
    once a second of traffic as the live agent does."""
    factory = DetectionFactory(load_catalog())
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    outcomes: Counter = Counter()
    step = 60 * SEC // count
    next_flush = T0 + SEC
    for i in range(count):
        ts = T0 + i * step
        src = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        det = factory.make(STORM_TYPES[i % len(STORM_TYPES)], ts, f"storm {i}",
                           source_address=src, destination_address="198.51.100.7",
                           protocol="modbus", function_code=i % 128)  # fmt: skip
        outcomes[manager.observe(det)] += 1
        if ts >= next_flush:
            manager.flush()
            next_flush = ts + SEC
    manager.flush()
    return manager, outcomes


@pytest.fixture
def storm(tmp_path):
    store = open_store(tmp_path / "sensor")
    count = env_count("OTWATCH_FLOOD_ALERTS", 100_000)
    rss0 = rss_mib()
    manager, outcomes = alert_storm(store, count)
    growth = rss_mib() - rss0
    yield store, manager, outcomes, count, growth
    store.close()


def test_alert_storm_is_rate_limited_per_type_and_sync_drains_it(storm, mosquitto, tmp_path):  # noqa: F811
    store, _manager, outcomes, count, growth = storm
    limit = DEFAULT_RATE_LIMIT.limit
    with store.session() as s:
        per_type = Counter(s.scalars(select(Alert.type_id)))
        keys = [aggregate_key(t) for t in STORM_TYPES]
        rows = s.scalars(select(Alert).where(Alert.dedup_key.in_(keys)))
        aggregates = {a.type_id: a for a in rows}
        outbox = s.scalar(select(func.count()).select_from(OutboxEvent))
    # every type: ``limit`` alerts in the minute, the rest folded into one aggregate
    assert per_type == {t: limit + 1 for t in STORM_TYPES}
    assert outcomes[DetectionOutcome.NEW_ALERT] == limit * len(STORM_TYPES)
    assert outcomes[DetectionOutcome.RATE_LIMITED] == count - limit * len(STORM_TYPES)
    for type_id, aggregate in aggregates.items():
        assert aggregate.detections == count // len(STORM_TYPES) - limit, type_id
        assert aggregate.message.startswith("Multiple violations: ")
        assert len(aggregate.fields["sources"]) == 20
    assert outbox == sum(per_type.values())
    assert growth < 50, f"RSS grew {growth:.0f} MiB"
    # the outbox drains to a real central through Mosquitto
    db_url = f"sqlite:///{tmp_path / 'central.db'}"
    central = CentralThread(db_url, BrokerConfig().with_url(mosquitto.url)).start()
    daemon = SensorDaemon(tmp_path / "sensor", mosquitto.url).start()
    try:
        central.wait_connected()
        wait_until(lambda: sensor_table(store) == central_table(db_url), 60, "the storm centrally")
        # and keeps draining: a second storm minute folds into the same aggregates
        manager2, _ = alert_storm(store, count // 10)
        del manager2
        wait_until(lambda: sensor_table(store) == central_table(db_url), 60, "the second minute")
        assert daemon.alive()
    finally:
        daemon.stop()
        central.stop()
    report(item="alert_storm", alerts_in=count, seconds_traffic=60,
           alerts_raised=sum(per_type.values()), per_type=dict(per_type),
           folded={t: a.detections for t, a in aggregates.items()},
           outbox=outbox, rss_growth_mib=round(growth, 1), central_equal=True)  # fmt: skip
