"""NetBIOS names (NBNS, NetBIOS Datagram) decoded by otwatch equal what tshark decodes, on
the real capture that carries them and on frames built here (a registration and a node
status response, which the corpus lacks); hostile bytes never raise."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.layers.netbios import (
    NBNSHeader,
    NBNSNodeStatusResponse,
    NBNSNodeStatusResponseService,
    NBNSRegistrationRequest,
)
from scapy.utils import wrpcap

from otwatch.agent.inventory.netbios import decode_name, nbdgm_source, nbns_names
from tests.unit.agent.inventory.conftest import inventory_of, tshark

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")

CAPTURE = "enip_remote_mode_change.pcap"


def _tshark_name(text: str) -> tuple[str, str]:
    """``WIN2K3LAB021<20> (Server service)`` → (``win2k3lab021``, ``20``)."""
    name, _, rest = text.partition("<")
    return name.strip().lower(), rest[:2]


def _names(engine, key: str) -> dict[str, str]:
    dev = engine.table.get(key)
    assert dev is not None, f"no device {key}"
    return {name: source for name, (source, _ts) in (dev.names or {}).items()}


def test_capture_names_match_tshark(pcaps: Path) -> None:
    path = pcaps / CAPTURE
    responses = tshark(path, "nbns.flags.response == 1 && nbns.addr", "nbns.name", "nbns.addr",
                       "udp.payload", "ip.src")  # fmt: skip
    datagrams = tshark(path, "nbdgm.source_name", "nbdgm.source_name", "nbdgm.src.ip",
                       "udp.payload")  # fmt: skip
    assert responses and len(datagrams) >= 3
    for name, addr, payload, src in responses:
        assert nbns_names(bytes.fromhex(payload), src) == [(_tshark_name(name)[0], addr)]
    for name, addr, payload in datagrams:
        assert nbdgm_source(bytes.fromhex(payload)) == (_tshark_name(name)[0], addr)
    queries = tshark(path, "nbns.flags.response == 0", "udp.payload")
    assert queries and all(nbns_names(bytes.fromhex(p), "192.0.2.1") == [] for [p] in queries)
    engine = inventory_of(path)
    assert _names(engine, "192.168.10.21") == {"win2k3lab021": "nbns"}
    assert _names(engine, "192.168.10.105") == {"dblicenseserver": "netbios-dgm"}
    assert engine.table.get("192.168.10.107") is None or "win2k3lab021" not in _names(
        engine, "192.168.10.107")  # fmt: skip  # who asked is not who answered


def test_built_registration_and_node_status_match_tshark(tmp_path: Path) -> None:
    host, mac = "192.0.2.30", "02:00:c0:00:02:1e"
    base = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=host, dst="192.0.2.255")
    registration = (
        base
        / UDP(sport=137, dport=137)
        / NBNSHeader(OPCODE=5, NM_FLAGS=0x11)
        / (NBNSRegistrationRequest(QUESTION_NAME=b"HMI-LINE3", SUFFIX=0x4141, NB_ADDRESS=host))
    )
    names = [(b"HMI-LINE3", 0x00, 0x04), (b"WORKGROUP", 0x00, 0x84), (b"HMI-LINE3", 0x20, 0x04)]
    table = [NBNSNodeStatusResponseService(NETBIOS_NAME=n.ljust(15), SUFFIX=s, NAME_FLAGS=f)
             for n, s, f in names]  # fmt: skip
    status = (Ether(src=mac, dst="02:00:c0:00:02:0a") / IP(src=host, dst="192.0.2.10")
              / UDP(sport=137, dport=137) / NBNSHeader(RESPONSE=1, ANCOUNT=1, QDCOUNT=0)
              / NBNSNodeStatusResponse(RR_NAME=b"*" + b"\x00" * 14, SUFFIX=0x4141,
                                       NODE_NAME=table, NUM_NAMES=3, RDLENGTH=107))  # fmt: skip
    path = tmp_path / "netbios.pcap"
    wrpcap(str(path), [registration, status])
    [[name, addr, payload]] = tshark(path, "nbns.flags.opcode == 5", "nbns.name", "nbns.addr",
                                     "udp.payload")  # fmt: skip
    assert nbns_names(bytes.fromhex(payload), host) == [(_tshark_name(name)[0], addr)]
    assert _tshark_name(name) == ("hmi-line3", "00")
    [[node_names, groups, payload]] = tshark(
        path, "nbns.flags.response == 1", "nbns.netbios_name", "nbns.name_flags.group",
        "udp.payload", occurrence="a",
    )  # fmt: skip
    unique = [n.lower() for n, g in zip(node_names.split(","), groups.split(","), strict=True)
              if g == "0"]  # fmt: skip
    assert unique == ["hmi-line3", "hmi-line3"]  # <00> and <20>; WORKGROUP is a group
    assert nbns_names(bytes.fromhex(payload), host) == [("hmi-line3", host)]
    assert _names(inventory_of(path), host) == {"hmi-line3": "nbns"}


def test_hostile_bytes_never_raise() -> None:
    rng = random.Random(16)
    good = bytes(
        NBNSHeader(OPCODE=5, NM_FLAGS=0x11)
        / NBNSRegistrationRequest(QUESTION_NAME=b"PLC1", NB_ADDRESS="192.0.2.9")
    )
    assert nbns_names(good, None) == [("plc1", "192.0.2.9")]
    for _ in range(3000):
        data = bytearray(good if rng.random() < 0.5 else rng.randbytes(rng.randrange(80)))
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        cut = bytes(data[: rng.randrange(len(data) + 1)])
        nbns_names(cut, "192.0.2.1")
        nbdgm_source(cut)
        decode_name(cut, rng.randrange(20))
    assert decode_name(b"\x20" + b"Z" * 32 + b"\x00", 0) is None  # not 'A'..'P'
    assert decode_name(b"\x20" + b"A" * 32 + b"\xc0\x0c", 0) is None  # a pointer in the scope
    assert decode_name(b"\xc0\x00", 0) is None  # a pointer to itself
