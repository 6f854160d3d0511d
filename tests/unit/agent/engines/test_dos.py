"""Suspicion of Denial Of Service Attack from packets."""

from __future__ import annotations

import struct

from otwatch.agent.engines.dos import DosEngine
from tests.factories import SEC, T0, B, EngineRun, netstore, syn

__all__ = ["netstore"]
ENGINES = (DosEngine,)


_TEMPLATE = bytes(syn("192.0.2.1", B, 80))


def syn_bytes(src_octet: int, sport: int) -> bytes:
    """Patch a Scapy-built SYN (fast: thousands of frames)."""
    frame = bytearray(_TEMPLATE)
    frame[29] = src_octet
    struct.pack_into("!H", frame, 34, sport)
    return bytes(frame)


def test_three_thousand_attempts_from_one_source(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn_bytes(7, 1024 + i) for i in range(3000)], SEC // 100, start_ns=T0)
    [det] = run.of("suspicion_of_denial_of_service_attack")
    assert (det.fields["source_address"], det.fields["destination_address"]) == ("192.0.2.7", B)


def test_distributed_flood_has_no_single_source(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn_bytes(1 + i % 200, 1024 + i) for i in range(3000)], SEC // 100, start_ns=T0)
    [det] = run.of("suspicion_of_denial_of_service_attack")
    assert det.fields["source_address"] is None


def test_busy_but_normal_server_is_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([syn_bytes(7, 1024 + i) for i in range(2999)], SEC // 100, start_ns=T0)
    run.feed(
        [syn_bytes(7, 1024 + i) for i in range(2000)], SEC // 20, start_ns=T0 + 60 * SEC
    )  # 20/s
    assert run.types() == {}
