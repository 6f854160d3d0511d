"""Device Failed to Receive a Dynamic IP Address from packets (and ticks)."""

from __future__ import annotations

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from otwatch.agent.engines.dhcp_failure import DhcpFailureEngine
from tests.factories import SEC, T0, A, B, feed, make_pipeline, netstore, tcp

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
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [dhcp("discover"), dhcp("offer", False), dhcp("request")], step_ns=4 * SEC)
    feed(p, [dhcp("nak", False)], T0 + 20 * SEC)
    feed(p, [tcp(A, B, 50000, 502)] * 3, T0 + 59 * SEC, SEC)  # other traffic: ticks
    [det] = got.of("device_failed_to_receive_a_dynamic_ip_address")
    assert (det.fields["source_mac"], det.fields["hostname"], det.fields["naks"]) == (
        CLIENT,
        "rtu-3",
        1,
    )
    assert det.ts_ns == T0 + 60 * SEC


def test_acknowledged_lease_is_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(
        p,
        [dhcp("discover"), dhcp("offer", False), dhcp("request"), dhcp("ack", False)],
        step_ns=SEC,
    )
    feed(p, [tcp(A, B, 50000, 502)] * 5, T0 + 100 * SEC, 30 * SEC)
    assert got.types() == {}
