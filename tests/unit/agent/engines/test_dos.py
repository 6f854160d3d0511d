"""Suspicion of Denial Of Service Attack from packets."""

from __future__ import annotations

import struct

from otwatch.agent.engines.dos import DosEngine
from tests.factories import SEC, T0, B, feed, make_pipeline, netstore, syn

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
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [syn_bytes(7, 1024 + i) for i in range(3000)], step_ns=SEC // 100)
    [det] = got.of("suspicion_of_denial_of_service_attack")
    assert (det.fields["source_address"], det.fields["destination_address"]) == ("192.0.2.7", B)


def test_distributed_flood_has_no_single_source(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [syn_bytes(1 + i % 200, 1024 + i) for i in range(3000)], step_ns=SEC // 100)
    [det] = got.of("suspicion_of_denial_of_service_attack")
    assert det.fields["source_address"] is None


def test_busy_but_normal_server_is_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [syn_bytes(7, 1024 + i) for i in range(2999)], step_ns=SEC // 100)
    feed(p, [syn_bytes(7, 1024 + i) for i in range(2000)], T0 + 60 * SEC, SEC // 20)  # 20/s
    assert got.types() == {}
