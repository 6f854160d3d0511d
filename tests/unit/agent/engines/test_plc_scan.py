"""PLC Scan Detected from packets."""

from __future__ import annotations

from otwatch.agent.engines.plc_scan import PlcScanEngine
from tests.factories import SEC, T0, A, EngineRun, netstore, syn, udp

__all__ = ["netstore"]
ENGINES = (PlcScanEngine,)
PLCS = [f"198.51.100.{i}" for i in range(1, 11)]


def test_ten_ot_endpoints_in_two_minutes(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed(
        [syn(A, h, 502) for h in PLCS[:5]]
        + [syn(A, PLCS[0], port) for port in (102, 44818, 20000, 2404)]
        + [udp(A, PLCS[1], 47808, 47808, b"\x81\x0b\x00\x0c")],
        start_ns=T0,
    )
    [det] = run.of("plc_scan_detected")
    assert det.fields["source_address"] == A and det.fields["targets"] == 10


def test_hmi_polling_its_learned_plcs_is_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES, learning_s=5)
    run.feed([syn(A, h, 502) for h in PLCS], start_ns=T0)
    run.feed([syn(A, h, 502, sport=41000) for h in PLCS] * 3, start_ns=T0 + 60 * SEC)
    run.feed(
        [syn(A, f"198.51.100.{i}", 80) for i in range(50, 80)], start_ns=T0 + 70 * SEC
    )  # not OT
    assert run.types() == {}
