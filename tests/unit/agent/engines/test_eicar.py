"""Malware Test File Detected - EICAR AV Success from packets."""

from __future__ import annotations

from otwatch.agent.engines.eicar import EICAR, EicarEngine
from tests.factories import T0, A, B, EngineRun, netstore, syn, tcp, udp

__all__ = ["netstore"]
ENGINES = (EicarEngine,)


def test_in_one_udp_datagram(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([udp(A, B, 50000, 69, b"\x00\x03\x00\x01" + EICAR)], start_ns=T0)
    [det] = run.of("malware_test_file_detected_eicar_av_success")
    assert det.fields["protocol"] == "tftp"


def test_split_across_two_tcp_segments_reported_once(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    body = b"HTTP/1.1 200 OK\r\n\r\n" + EICAR
    run.feed(
        [
            syn(B, A, 80, 50000),
            tcp(A, B, 80, 50000, payload=body[:50]),
            tcp(A, B, 80, 50000, payload=body[50:]),
            tcp(A, B, 80, 50000, payload=body),
        ],
        start_ns=T0,
    )
    assert run.types() == {"malware_test_file_detected_eicar_av_success": 1}


def test_similar_bytes_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([tcp(A, B, 80, 50000, payload=EICAR[:-1] + b"!")], start_ns=T0)
    run.feed(
        [tcp(A, B, 80, 50001, payload=b"X5O!P%@AP"), tcp(A, B, 80, 50001, payload=b"hello")],
        start_ns=T0,
    )
    run.feed(
        [udp(A, B, 50000, 69, EICAR[:40]), udp(A, B, 50000, 69, EICAR[40:])], start_ns=T0
    )  # UDP: no carry
    assert run.types() == {}


def test_found_wherever_the_segments_split_it(netstore):
    """Every split point: the tail kept may be "X", "X5", "X5O…", and the rest may hold no "X"
    at all (a pure ACK in between does not lose it)."""
    from tests.factories import tcp as segment

    for cut in range(1, len(EICAR)):
        run = EngineRun.with_store(netstore, ENGINES)
        head, rest = b"GET / HTTP/1.1\r\n\r\n" + EICAR[:cut], EICAR[cut:] + b"\r\n"
        run.feed([segment(A, B, 80, 50000 + cut, payload=head),
                 segment(A, B, 80, 50000 + cut, flags="A"),
                 segment(A, B, 80, 50000 + cut, payload=rest)], start_ns=T0)  # fmt: skip
        assert run.types() == {"malware_test_file_detected_eicar_av_success": 1}, cut
