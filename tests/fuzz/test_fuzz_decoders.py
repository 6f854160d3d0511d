"""Every decoder called directly on mutated and random inputs: none may raise.

Inputs are the payloads of the frame fuzzer's seed groups for the decoder's protocol, mutated
(``tests/fuzz/frames.py``), and random bytes. Scapy layers run with ``conf.debug_dissector``
on, so a broken dissector raises instead of silently becoming ``Raw``. The default run gives
each decoder 3,000 inputs; the ``slow`` run ``OTWATCH_FUZZ_DECODER_INPUTS`` (default 1,000,000)
and writes a JSON line per decoder to ``OTWATCH_FUZZ_REPORT_DECODERS`` when set.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from scapy.config import conf

from otwatch.agent.decode import cip, dblogin, dhcp, dns, headers, httpmsg, icmp, smb
from otwatch.agent.decode.layers import bacnet, dnp3, dnp3_objects, s7comm
from otwatch.agent.decode.reassembly import FrameReader, Stream
from tests.fuzz.frames import PCAPS, Mutator, env_count, mutants, rss_mib, seed_groups


def _reader(frame_length, resync) -> Callable[[bytes], Any]:
    """A stream reader fed segment after segment (state carries over, as in an engine)."""
    reader, stream = FrameReader(frame_length, resync, max_buffer=4096), Stream()
    seq = [1000]

    def feed(data: bytes) -> Any:
        out = reader.feed(stream, seq[0], data)
        seq[0] = (seq[0] + len(data)) & 0xFFFFFFFF
        return out

    return feed


def _dnp3_transport() -> Callable[[bytes], Any]:
    assembler = dnp3.TransportReassembler(max_fragment=2048)
    return assembler.feed


def _dnp3_frame(data: bytes) -> Any:
    frame = dnp3.parse_frame(data)
    if isinstance(frame, dnp3.LinkFrame) and frame.carries_user_data:
        dnp3.DNP3Application(frame.user_data[1:])  # after the transport header
    return frame


# decoder name → (seed group tags, callable on one input)
DECODERS: dict[str, tuple[tuple[str, ...], Callable[[], Callable[[bytes], Any]]]] = {
    "headers.decode": (
        ("*",),
        lambda: lambda d: headers.decode(0, len(d), d[0] % 4 if d else 1, d[1:]),
    ),
    "dns.parse_dns": (("dns", "mdns", "llmnr", "nbns"), lambda: dns.parse_dns),
    "dns.parse_dns_tcp": (("dns",), lambda: dns.parse_dns_tcp),
    "httpmsg.parse_http": (("http", "ftp"), lambda: httpmsg.parse_http),
    "httpmsg.looks_like_request": (("http",), lambda: httpmsg.looks_like_request),
    "dhcp.parse_dhcp": (("dhcp",), lambda: dhcp.parse_dhcp),
    "smb.parse_smb": (("smb", "netbios"), lambda: smb.parse_smb),
    "dblogin.postgres": (("postgres",), lambda: dblogin.postgres_login_result),
    "dblogin.mysql": (
        ("mysql",),
        lambda: lambda d: (dblogin.is_mysql_greeting(d), dblogin.mysql_login_result(d)),
    ),
    "dblogin.tds": (("tds",), lambda: dblogin.tds_login_result),
    "cip.parse_enip": (
        ("enip", "enip_io"),
        lambda: lambda d: (cip.parse_enip(d), cip.frame_length(d, 0), cip.resync(d, 0)),
    ),
    "cip.cip_message": (
        ("enip",),
        lambda: lambda d: [cip.cip_message(c, d[24:]) for c in (0x6F, 0x70)],
    ),
    "cip.list_identity": (("enip",), lambda: lambda d: cip.list_identity(d[24:])),
    "cip.stream": (("enip",), lambda: _reader(cip.frame_length, cip.resync)),
    "icmp.quoted_datagram": (
        ("@icmp",),
        lambda: lambda d: [icmp.quoted_datagram(p, t, d) for p, t in ((1, 3), (1, 11), (58, 1))],
    ),
    "dnp3.parse_frame": (("dnp3",), lambda: _dnp3_frame),
    "dnp3.stream": (("dnp3",), lambda: _reader(dnp3.frame_length, dnp3.resync)),
    "dnp3.transport": (("dnp3",), _dnp3_transport),
    "dnp3.DNP3Application": (("dnp3",), lambda: lambda d: dnp3.DNP3Application(d[10:])),
    "dnp3_objects.check_objects": (
        ("dnp3",),
        lambda: lambda d: [dnp3_objects.check_objects(f, d[12:]) for f in (1, 2, 129)],
    ),
    "s7comm.TPKT": (("s7comm",), lambda: s7comm.TPKT),
    "s7comm.S7": (("s7comm",), lambda: lambda d: s7comm.S7(d[7:])),
    "s7comm.stream": (("s7comm",), lambda: _reader(s7comm.frame_length, s7comm.resync)),
    "bacnet.BVLC": (("bacnet",), lambda: bacnet.BVLC),
    "bacnet.parse_tag": (
        ("bacnet",),
        lambda: lambda d: [bacnet.parse_tag(d, i) for i in range(min(len(d), 12))],
    ),
    "bacnet.error_class_code": (("bacnet",), lambda: bacnet.error_class_code),
}


@pytest.fixture(scope="module")
def payloads(tmp_path_factory) -> dict[str, list[tuple[int, bytes]]]:
    """Seed payloads per group tag (``*``: whole frames, link type in the first byte)."""
    if not PCAPS.is_dir():
        pytest.skip(f"capture corpus not found at {PCAPS}")
    groups = seed_groups(tmp_path_factory.mktemp("seeds"))
    out: dict[str, list[tuple[int, bytes]]] = {"*": []}
    for tag, seeds in groups.items():
        for linktype, data in seeds:
            out["*"].append((1, bytes([linktype % 4]) + data))
            payload = headers.decode(0, len(data), linktype, data).payload
            if payload:
                out.setdefault(tag, []).append((1, payload))
    return out


@pytest.fixture(autouse=True)
def debug_dissector():
    old, conf.debug_dissector = conf.debug_dissector, True
    yield
    conf.debug_dissector = old


def run(name: str, payloads: dict, count: int) -> dict[str, Any]:
    tags, make = DECODERS[name]
    seeds = [s for tag in tags for s in payloads.get(tag, [])]
    call = make()
    failures: list[str] = []
    started, rss0 = time.perf_counter(), rss_mib()
    rng = random.Random(name)
    source = mutants(seeds, count, rng.randrange(1 << 30)) if seeds else None
    random_inputs = Mutator(rng.randrange(1 << 30))
    for i in range(count):
        data = next(source)[1] if source is not None and i % 20 else random_inputs.random_frame()[1]
        try:
            call(data)
        except Exception as exc:
            if len(failures) < 5:
                failures.append(f"{type(exc).__name__}: {exc} on {data!r}")
            else:
                failures.append("")
    return {
        "decoder": name,
        "inputs": count,
        "seeds": len(seeds),
        "exceptions": len(failures),
        "seconds": round(time.perf_counter() - started, 1),
        "rss_growth_mib": round(rss_mib() - rss0, 1),
        "first": [f for f in failures if f][:5],
    }


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoder_never_raises(name, payloads):
    result = run(name, payloads, env_count("OTWATCH_FUZZ_DECODER_INPUTS_SHORT", 3000))
    assert result["exceptions"] == 0, result
    assert result["seeds"] > 0 or name == "headers.decode", "no seed payloads for this decoder"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DECODERS))
def test_decoder_never_raises_on_a_million_inputs(name, payloads):
    result = run(name, payloads, env_count("OTWATCH_FUZZ_DECODER_INPUTS", 1_000_000))
    out = os.environ.get("OTWATCH_FUZZ_REPORT_DECODERS")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(result) + "\n")
    assert result["exceptions"] == 0, result
    assert result["rss_growth_mib"] < 100, result
