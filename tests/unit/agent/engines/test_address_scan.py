"""Address Scan Detected / Long Duration Address Scan Detected from packets."""

from __future__ import annotations

from otwatch.agent.engines.address_scan import AddressScanEngine
from tests.factories import SEC, T0, A, feed, icmp_echo, make_pipeline, netstore, syn, udp

__all__ = ["netstore"]
ENGINES = (AddressScanEngine,)


def targets(n: int) -> list[str]:
    return [f"198.51.{100 + i // 250}.{1 + i % 250}" for i in range(n)]


def test_fifty_addresses_of_one_class_b_in_two_minutes(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [syn(A, t, 502) for t in targets(25)] + [icmp_echo(A, t) for t in targets(50)[25:]])
    [det] = got.of("address_scan_detected")
    assert det.fields["source_address"] == A and det.fields["network"] == "198.51.0.0/16"
    assert not got.of("long_duration_address_scan_detected")


def test_udp_first_datagrams_count_too(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [udp(A, t, 40000 + i, 161, b"\x30\x00") for i, t in enumerate(targets(50))])
    assert got.types()["address_scan_detected"] == 1


def test_normal_traffic_is_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [syn(A, t, 502) for t in targets(49)])  # one short of the threshold
    feed(p, [syn(A, "198.51.100.1", 502, sport=41000 + i) for i in range(200)], T0 + 10 * SEC)
    # 40 addresses in each of three /16 networks: 120 addresses, no network reaches 50
    nets = [f"{net}.{i}" for net in ("192.0.2", "203.0.113") for i in range(100, 140)]
    feed(p, [syn(A, t, 80) for t in nets], T0 + 20 * SEC)
    assert got.types() == {}


def test_slow_scan_is_long_duration(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [syn(A, t, 80) for t in targets(50)], step_ns=6 * SEC)  # 50 over ~5 minutes
    assert got.types() == {"long_duration_address_scan_detected": 1}


def test_scanner_seen_while_learning_is_authorised(netstore):
    p, got = make_pipeline(netstore, ENGINES, learning_s=10)
    feed(p, [syn(A, t, 80) for t in targets(50)])
    assert got.types() == {} and A in p.ctx.baseline.kind("address_scanner")
    feed(p, [syn(A, t, 81) for t in targets(60)], T0 + 400 * SEC)
    assert got.types() == {}
