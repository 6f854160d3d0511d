"""Internet Access Detected, Unauthorized Internet Connectivity Detected and External
address within the network communicated with Internet, from packets."""

from __future__ import annotations

from scapy.layers.dns import DNS, DNSQR, DNSRR

from otwatch.agent.engines.internet import InternetEngine
from tests.factories import SEC, T0, A, B, C, EngineRun, icmp_echo, netstore, syn, synack, udp

__all__ = ["netstore"]
ENGINES = (InternetEngine,)
INTERNAL = {"internet": {"internal_subnets": ["192.0.2.0/24", "198.51.100.0/24"]}}
PUBLIC2 = "203.0.113.77"


def test_attempt_then_success(netstore):
    run = EngineRun.with_store(netstore, ENGINES, settings=INTERNAL)
    run.feed([syn(A, C, 443), synack(C, A, 443), syn(B, C, 53)], start_ns=T0)
    assert run.types() == {
        "internet_access_detected": 2,
        "unauthorized_internet_connectivity_detected": 1,
    }
    ok = run.of("unauthorized_internet_connectivity_detected")[0]
    assert (ok.fields["source_address"], ok.fields["destination_address"], ok.fields["port"]) == (
        A,
        C,
        443,
    )


def test_udp_reply_and_public_to_public(netstore):
    run = EngineRun.with_store(netstore, ENGINES, settings=INTERNAL)
    run.feed([udp(A, C, 50000, 123, bytes(48)), udp(C, A, 123, 50000, bytes(48))], start_ns=T0)
    run.feed([syn(C, PUBLIC2, 80)], start_ns=T0 + SEC)
    assert run.types() == {
        "internet_access_detected": 1,
        "unauthorized_internet_connectivity_detected": 1,
        "external_address_within_the_network_communicated_with_internet": 1,
    }


def test_learned_devices_internal_traffic_and_allowlist_are_quiet(netstore):
    settings = {"internet": {**INTERNAL["internet"], "fqdn_allowlist": ["*.updates.example"]}}
    run = EngineRun.with_store(netstore, ENGINES, settings=settings, learning_s=10)
    run.feed([syn(A, C, 443), synack(C, A, 443)], start_ns=T0)  # A uses the Internet while learning
    answer = DNS(
        qr=1,
        qd=DNSQR(qname="dl.updates.example"),
        an=DNSRR(rrname="dl.updates.example", rdata=PUBLIC2),
    )
    later = T0 + 60 * SEC
    run.feed(
        [
            syn(A, PUBLIC2, 443),
            synack(PUBLIC2, A, 443),  # learned device
            udp("192.0.2.1", B, 53, 50000, bytes(answer)),  # B resolves an allowed name ...
            syn(B, PUBLIC2, 443),
            synack(PUBLIC2, B, 443),  # ... and connects to it
            syn(B, "198.51.100.99", 502),
            icmp_echo(B, "192.0.2.1"),  # internal
            udp(B, "224.0.0.251", 5353, 5353, b"\x00" * 12),  # multicast
        ],
        start_ns=later,
    )
    assert run.types() == {}


def test_default_classification_uses_global_addresses(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [syn(A, C, 443), syn("10.1.2.3", "192.168.1.1", 80)], start_ns=T0
    )  # all non-global: internal
    assert run.types() == {}
    run.feed([syn("10.1.2.3", "8.8.8.8", 53)], start_ns=T0 + SEC)
    assert run.types() == {"internet_access_detected": 1}
