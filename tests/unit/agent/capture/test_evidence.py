"""Per-alert evidence cut from a real ring in a real store; files checked with tshark."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.capture.config import EvidenceConfig, RingConfig, evidence_directory
from otwatch.agent.capture.evidence import (
    Evidence,
    EvidenceNotFound,
    HostMatcher,
    PcapUnavailable,
    export_alert_pcap,
)
from otwatch.agent.capture.ring import RingWriter, iter_segment
from otwatch.agent.store.models_pcap import PcapEvidence
from otwatch.alerts.catalog import load_catalog
from tests.factories import T0, detection, ether_frames

SEC = 1_000_000_000
A, B, C = "192.0.2.10", "198.51.100.20", "203.0.113.30"


def udp(src: str, dst: str, payload: bytes = b"x" * 20, vlan: int | None = None):
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether

    frame = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    if vlan is not None:
        frame = frame / Dot1Q(vlan=vlan)
    return frame / IP(src=src, dst=dst) / UDP(sport=1000, dport=2000) / payload


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def ring(store):
    config = RingConfig(directory=Path(store.data_dir) / "ring", max_percent=None)
    writer = RingWriter(store, config)
    yield writer
    writer.close()


def evidence_for(store, clock=None, **kw) -> Evidence:
    config = EvidenceConfig(directory=evidence_directory(store.data_dir), **kw)
    return Evidence(store, config, wall_ns=clock or Clock(T0))


def raise_alert(store, ts_ns: int, src: str = A, dst: str = B) -> int:
    manager = AlertManager(store, load_catalog(), sensor_id="s1")
    manager.observe(detection(ts_ns=ts_ns, src=src, dst=dst))
    manager.flush()
    return next(iter(manager.stats.created | manager.stats.updated))


def evidence_row(store, alert_id: int) -> PcapEvidence:
    with store.session() as s:
        row = s.get(PcapEvidence, alert_id)
        s.expunge(row)
        return row


def traffic(start: int, seconds: int, per_second: int = 4):
    """A↔B, A↔C and B↔C frames spread over ``seconds`` of traffic time."""
    packets = []
    for _ in range(seconds):
        for i in range(per_second):
            pair = [(A, B), (A, C), (B, C), (C, A)][i % 4]
            packets.append(udp(*pair))
    return ether_frames(packets, start_ns=start, step_ns=SEC // per_second)


def test_host_matcher_needs_the_address_in_a_header_not_in_the_payload():
    match = HostMatcher([A])
    import ipaddress

    sneaky = udp(B, C, payload=ipaddress.ip_address(A).packed * 4)
    frames = ether_frames([udp(A, B), udp(B, A), sneaky, udp(B, C, vlan=7), udp(A, C, vlan=7)])
    assert [match(f) for f in frames] == [True, True, False, False, True]
    assert not HostMatcher([])


def test_window_is_cut_when_the_ring_holds_it(store, ring):
    frames = traffic(T0 - 60 * SEC, 120)  # two minutes of traffic around T0
    ring.write_batch(frames[: len(frames) // 2 + 4], 1, True)  # up to T0 + 1 s
    ring.tick()
    alert_id = raise_alert(store, T0)
    clock = Clock(T0 + 2 * SEC)
    ev = evidence_for(store, clock)
    assert ev.schedule([alert_id]) == 1
    assert ev.due() == []  # the 'after' part is not in the ring yet
    ring.write_batch(frames[len(frames) // 2 + 4 :], 1, True)
    ring.tick()
    assert ev.due() == [alert_id]
    assert ev.extract_due() == 1
    row = evidence_row(store, alert_id)
    assert row.status == "ready"
    expected = [
        f for f in frames if T0 - 30 * SEC <= f[0] <= T0 + 30 * SEC and HostMatcher([A, B])(f)
    ]
    path = Path(store.data_dir) / row.path
    assert list(iter_segment(path)) == expected
    assert row.packets == len(expected) and row.bytes == path.stat().st_size
    if shutil.which("tshark"):
        out = subprocess.run(
            ["tshark", "-r", str(path), "-T", "fields", "-e", "ip.src"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert len(out) == len(expected) and set(out) <= {A, B, C}


def test_a_quiet_link_completes_the_window_by_wall_clock(store, ring):
    ring.write_batch(traffic(T0 - 5 * SEC, 6), 1, True)
    ring.tick()
    alert_id = raise_alert(store, T0)
    clock = Clock(T0 + 10 * SEC)
    ev = evidence_for(store, clock)
    ev.schedule([alert_id])
    assert ev.due() == []
    clock.now = T0 + 36 * SEC  # 30 s after + 5 s grace, no packets since
    assert ev.due() == [alert_id]


def test_detected_again_appends_only_newer_packets_and_keeps_rotated_ones(store, ring):
    first = traffic(T0 - 40 * SEC, 80)
    ring.write_batch(first, 1, True)
    ring.tick()
    alert_id = raise_alert(store, T0)
    ev = evidence_for(store, Clock(T0 + 100 * SEC), before_s=10, after_s=10)
    ev.schedule([alert_id])
    ev.extract_due()
    once = evidence_row(store, alert_id)
    first_cut = list(iter_segment(Path(store.data_dir) / once.path))
    assert len(first_cut) == once.packets and first_cut[-1][0] <= T0 + 10 * SEC
    # the same traffic again 30 s later: the window grows to T0 + 40 s
    raise_alert(store, T0 + 30 * SEC)
    ev.schedule([alert_id])
    assert evidence_row(store, alert_id).status == "pending"
    ev.extract_due()
    twice = evidence_row(store, alert_id)
    frames = list(iter_segment(Path(store.data_dir) / twice.path))
    assert frames[: once.packets] == first_cut  # what was cut first stays as it was
    assert frames[0][0] >= T0 - 10 * SEC and frames[-1][0] <= T0 + 40 * SEC
    assert frames[-1][0] > T0 + 30 * SEC
    assert len({f[0] for f in frames}) == len(frames)  # nothing twice
    assert twice.covered_until_ns == T0 + 40 * SEC


def test_each_alert_file_keeps_under_its_budget_newest_packets_kept(store, ring):
    frames = traffic(T0 - 30 * SEC, 60, per_second=12)
    ring.write_batch(frames, 1, True)
    ring.tick()
    alert_id = raise_alert(store, T0)
    ev = evidence_for(store, Clock(T0 + 100 * SEC), alert_max_bytes=4096)
    ev.schedule([alert_id])
    ev.extract_due()
    row = evidence_row(store, alert_id)
    path = Path(store.data_dir) / row.path
    assert row.bytes == path.stat().st_size <= 4096
    kept = list(iter_segment(path))
    matching = [f for f in frames if HostMatcher([A, B])(f)]
    assert kept == matching[-len(kept) :]


def test_all_evidence_keeps_under_the_evidence_budget_oldest_out(store, ring):
    ring.write_batch(traffic(T0 - 60 * SEC, 200), 1, True)
    ring.tick()
    clock = Clock(T0 + 500 * SEC)
    ev = evidence_for(store, clock, max_bytes=30_000)  # room for one file (~19 kB), not two
    ids = []
    for i, dst in enumerate((B, C)):
        ids.append(raise_alert(store, T0 + i * 50 * SEC, src=A, dst=dst))
        ev.schedule(ids[-1:])
        clock.now += SEC
        ev.extract_due()
    first, second = evidence_row(store, ids[0]), evidence_row(store, ids[1])
    assert first.status == "evicted" and first.path is None and "budget" in first.message
    assert second.status == "ready"
    assert not (evidence_directory(store.data_dir) / f"alert-{ids[0]}.pcap").exists()


def test_no_ring_data_for_the_window_is_unavailable(store, ring):
    ring.write_batch(traffic(T0 + 1000 * SEC, 5), 1, True)
    ring.tick()
    alert_id = raise_alert(store, T0)
    ev = evidence_for(store, Clock(T0 + 2000 * SEC))
    ev.schedule([alert_id])
    ev.extract_due()
    row = evidence_row(store, alert_id)
    assert row.status == "unavailable" and row.message.startswith("PCAP not available")


def test_export_from_evidence_from_ring_and_after_rotation(store, tmp_path):
    small = RingConfig(
        directory=Path(store.data_dir) / "ring", segment_bytes=1 << 20, max_bytes=3 << 20,
        max_percent=None,
    )  # fmt: skip
    ring = RingWriter(store, small)
    ring.write_batch(traffic(T0 - 40 * SEC, 80), 1, True)
    ring.tick()
    alert_id = raise_alert(store, T0)
    out = tmp_path / "from-ring.pcap"
    result = export_alert_pcap(store, alert_id, out)  # no evidence yet: cut from the ring now
    assert result.source == "ring" and result.packets > 0
    assert len(list(iter_segment(out))) == result.packets
    ev = evidence_for(store, Clock(T0 + 100 * SEC))
    ev.schedule([alert_id])
    ev.extract_due()
    result2 = export_alert_pcap(store, alert_id, tmp_path / "from-evidence.pcap")
    assert result2.source == "evidence" and result2.packets == result.packets
    with pytest.raises(EvidenceNotFound, match="alert 999 does not exist"):
        export_alert_pcap(store, 999, tmp_path / "x.pcap")
    # a second alert whose packets the ring rotates out before anyone cuts them
    other = raise_alert(store, T0, src=B, dst=C)
    big = [(T0 + 200 * SEC + i, 1000, 1, bytes(990)) for i in range(8000)]  # ~8 MiB of filler
    for i in range(0, len(big), 500):
        ring.write_batch(big[i : i + 500], 1, True)
    ring.close()
    with pytest.raises(PcapUnavailable, match="PCAP not available: rotated out at"):
        export_alert_pcap(store, other, tmp_path / "gone.pcap")
    assert not (tmp_path / "gone.pcap").exists()
    # the first alert's evidence survives the rotation
    assert export_alert_pcap(store, alert_id, tmp_path / "kept.pcap").packets == result.packets


def test_schedule_ignores_unknown_alerts(store):
    ev = evidence_for(store)
    assert ev.schedule([12345]) == 0
    with store.session() as s:
        assert s.scalars(select(PcapEvidence)).all() == []


def test_an_interrupted_extraction_leaves_the_row_pending_and_no_partial_file(store, ring):
    ring.write_batch(traffic(T0 - 40 * SEC, 80), 1, True)
    ring.tick()
    alert_id = raise_alert(store, T0)
    ev = evidence_for(store, Clock(T0 + 100 * SEC))
    ev.schedule([alert_id])

    assert ev.extract_due(stopping=lambda: True) == 0  # shutting down: the pass stops
    row = evidence_row(store, alert_id)
    assert row.status == "pending" and row.path is None and row.covered_until_ns is None
    assert not (evidence_directory(store.data_dir) / f"alert-{alert_id}.pcap").exists()
    assert ev.extract_due() == 1 and evidence_row(store, alert_id).status == "ready"


def test_a_pass_is_bounded_and_high_severity_goes_first(store, ring):
    """An alert flood waits in the backlog: one pass per call past the deadline, each of at
    most ``pass_alerts`` alerts, high severity first."""
    import time

    ring.write_batch(traffic(T0 - 40 * SEC, 80), 1, True)
    ring.tick()
    ids = [raise_alert(store, T0 + i * SEC, src=A, dst=f"203.0.113.{40 + i}") for i in range(5)]
    with store.session() as s:
        from otwatch.agent.store.models import Alert

        s.get(Alert, ids[-1]).severity = "high"
        for alert_id in ids[:-1]:
            s.get(Alert, alert_id).severity = "low"
    ev = evidence_for(store, Clock(T0 + 200 * SEC), pass_alerts=2)
    ev.schedule(ids)
    assert ev.extract_due(deadline=time.monotonic() - 1) == 2  # one pass, then out of time
    statuses = {i: evidence_row(store, i).status for i in ids}
    assert statuses[ids[-1]] == "ready" and list(statuses.values()).count("pending") == 3
    assert ev.extract_due() == 3


def test_the_backlog_is_in_status_and_health(store, ring):
    from otwatch.agent.capture.status import pcap_status
    from otwatch.cli.status import sensor_text
    from otwatch.health import sensor_health

    ring.write_batch(traffic(T0 - 40 * SEC, 80), 1, True)
    ring.tick()
    ids = [raise_alert(store, T0 + i * SEC, src=A, dst=f"203.0.113.{40 + i}") for i in range(3)]
    ev = evidence_for(store, Clock(T0 + 200 * SEC), pass_alerts=1)
    ev.schedule(ids)
    assert pcap_status(store)["evidence"]["backlog"] == 3
    ev.extract_due(deadline=0)  # one pass of one alert
    health = sensor_health(store)
    assert health["evidence"]["backlog"] == 2
    assert "2 window(s) waiting to be cut" in sensor_text(health)
