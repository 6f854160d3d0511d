"""The network/IT detectors on real public captures, through the full pipeline and store."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.capture.pcapwrite import pcap_record, write_pcap_header
from otwatch.agent.engines.network import NETWORK_ENGINES
from otwatch.agent.replay import DetectionOptions, replay
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert

MINE = frozenset().union(*(engine.type_ids for engine in NETWORK_ENGINES))


def alerts(store) -> list[Alert]:
    with store.session() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def split(path: Path, out: Path) -> tuple[Path, Path, int]:
    """Write the two halves of a capture; returns them and the first half's duration."""
    records = list(open_capture(path))
    half = len(records) // 2
    files = []
    for name, part in (("first.pcap", records[:half]), ("second.pcap", records[half:])):
        target = out / name
        with target.open("wb") as f:
            write_pcap_header(f, records[0][2])
            for ts_ns, wire_len, _linktype, data in part:
                f.write(pcap_record(ts_ns, wire_len, data))
        files.append(target)
    return files[0], files[1], records[half - 1][0] - records[0][0]


def test_nmap_host_discovery_is_an_arp_scan(pcaps, store, tmp_path):
    # ARP Address Scan is off by default (spec *): with the defaults it stays silent ...
    quiet = open_store(tmp_path / "defaults")
    replay([pcaps / "nmap_host_discovery.pcap"], quiet, sensor_id="s1")
    assert "arp_address_scan_detected" not in {a.type_id for a in alerts(quiet)}
    # ... and an administrator who turns it on sees the scan
    on = DetectionOptions(settings={"arp_scan": {"enable": ["arp_address_scan_detected"]}})
    summary = replay([pcaps / "nmap_host_discovery.pcap"], store, sensor_id="s1", detection=on)
    assert summary.packets == 547
    [scan] = [a for a in alerts(store) if a.type_id == "arp_address_scan_detected"]
    assert scan.source_address == "192.168.1.71" and scan.protocol == "arp"
    # its TCP probes go to the handful of hosts that answered: far below the 25-port,
    # 50-address and 10-PLC-endpoint thresholds, so no other scan alert
    assert not {a.type_id for a in alerts(store)} & {
        "address_scan_detected",
        "long_duration_address_scan_detected",
        "plc_scan_detected",
    }


def test_wikipedia_after_learning_its_first_half(pcaps, store, tmp_path):
    first, second, duration = split(pcaps / "it_wikipedia_dns_http.pcap", tmp_path)
    learned = replay([first], store, sensor_id="s1", learning_period_ns=duration)
    assert learned.alerts_new == 0 and learned.learning_remaining_s == 0
    replay([second], store, sensor_id="s1")
    raised = [a for a in alerts(store) if a.type_id in MINE]
    # Justified: hosts that first send to a multicast group or subnet broadcast (mDNS, LLMNR,
    # NetBIOS name service) in the second half did not do so while learning - the policy
    # alert exists for exactly that. Everything else (DNS, HTTP to Wikipedia, the clients'
    # Internet use, ARP) was learned.
    assert {a.type_id for a in raised} == {"unauthorized_multicast_broadcast_connection"}
    for alert in raised:
        group = alert.destination_address
        assert group.startswith(("224.0.0.", "ff02::")) or group.endswith(".255")
        assert alert.fields["port"] in (137, 5353, 5355)
