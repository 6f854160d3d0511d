"""Address Scan Detected / Long Duration Address Scan Detected from packets."""

from __future__ import annotations

from otwatch.agent.engines.address_scan import AddressScanEngine
from tests.factories import SEC, T0, A, EngineRun, icmp_echo, netstore, syn, udp

__all__ = ["netstore"]
ENGINES = (AddressScanEngine,)


def targets(n: int) -> list[str]:
    return [f"198.51.{100 + i // 250}.{1 + i % 250}" for i in range(n)]


def test_fifty_addresses_of_one_class_b_in_two_minutes(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [syn(A, t, 502) for t in targets(25)] + [icmp_echo(A, t) for t in targets(50)[25:]],
        start_ns=T0,
    )
    [det] = run.of("address_scan_detected")
    assert det.fields["source_address"] == A and det.fields["network"] == "198.51.0.0/16"
    assert not run.of("long_duration_address_scan_detected")


def test_udp_first_datagrams_count_too(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [udp(A, t, 40000 + i, 161, b"\x30\x00") for i, t in enumerate(targets(50))], start_ns=T0
    )
    assert run.types()["address_scan_detected"] == 1


def test_normal_traffic_is_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn(A, t, 502) for t in targets(49)], start_ns=T0)  # one short of the threshold
    run.feed(
        [syn(A, "198.51.100.1", 502, sport=41000 + i) for i in range(200)], start_ns=T0 + 10 * SEC
    )
    # 40 addresses in each of three /16 networks: 120 addresses, no network reaches 50
    nets = [f"{net}.{i}" for net in ("192.0.2", "203.0.113") for i in range(100, 140)]
    run.feed([syn(A, t, 80) for t in nets], start_ns=T0 + 20 * SEC)
    assert run.types() == {}


def test_slow_scan_is_long_duration(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn(A, t, 80) for t in targets(50)], 6 * SEC, start_ns=T0)  # 50 over ~5 minutes
    assert run.types() == {"long_duration_address_scan_detected": 1}


def test_scanner_seen_while_learning_is_authorised(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=10)
    run.feed([syn(A, t, 80) for t in targets(50)], start_ns=T0)
    assert run.types() == {} and A in run.ctx.baseline.kind("address_scanner")
    run.feed([syn(A, t, 81) for t in targets(60)], start_ns=T0 + 400 * SEC)
    assert run.types() == {}
