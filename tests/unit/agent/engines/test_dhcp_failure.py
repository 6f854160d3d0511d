"""Device Failed to Receive a Dynamic IP Address from packets (and ticks)."""

from __future__ import annotations

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from otwatch.agent.engines.dhcp_failure import DhcpFailureEngine
from tests.factories import SEC, T0, A, B, EngineRun, netstore, tcp

__all__ = ["netstore"]
ENGINES = (DhcpFailureEngine,)
CLIENT = "02:00:00:00:00:42"


def dhcp(kind: str, from_client: bool = True) -> object:
    chaddr = bytes.fromhex(CLIENT.replace(":", ""))
    src, dst, sport, dport = (
        ("0.0.0.0", "255.255.255.255", 68, 67)
        if from_client
        else ("192.0.2.1", "255.255.255.255", 67, 68)
    )
    return (
        Ether(src=CLIENT if from_client else "02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")
        / IP(src=src, dst=dst)
        / UDP(sport=sport, dport=dport)
        / BOOTP(op=1 if from_client else 2, chaddr=chaddr, xid=7)
        / DHCP(options=[("message-type", kind), ("hostname", b"rtu-3"), "end"])
    )


def test_discover_without_ack(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([dhcp("discover"), dhcp("offer", False), dhcp("request")], 4 * SEC, start_ns=T0)
    run.feed([dhcp("nak", False)], start_ns=T0 + 20 * SEC)
    run.feed([tcp(A, B, 50000, 502)] * 3, SEC, start_ns=T0 + 59 * SEC)  # other traffic: ticks
    [det] = run.of("device_failed_to_receive_a_dynamic_ip_address")
    assert (det.fields["source_mac"], det.fields["hostname"], det.fields["naks"]) == (
        CLIENT,
        "rtu-3",
        1,
    )
    assert det.ts_ns == T0 + 60 * SEC


def test_acknowledged_lease_is_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [dhcp("discover"), dhcp("offer", False), dhcp("request"), dhcp("ack", False)],
        SEC,
        start_ns=T0,
    )
    run.feed([tcp(A, B, 50000, 502)] * 5, 30 * SEC, start_ns=T0 + 100 * SEC)
    assert run.types() == {}
