"""Tests for the fast header decoder, checked field by field against Scapy's dissection."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.config import conf
from scapy.contrib.modbus import ModbusADURequest, ModbusPDU03ReadHoldingRegistersRequest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    fragment6,
)
from scapy.layers.l2 import (
    ARP,
    LLC,
    STP,
    CookedLinux,
    CookedLinuxV2,
    Dot1AD,
    Dot1Q,
    Dot3,
    Ether,
)
from scapy.packet import Packet, Raw
from scapy.utils import mac2str

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.decode import headers
from otwatch.agent.decode.headers import (
    ACK,
    L3_ARP,
    L3_IPV4,
    L3_IPV6,
    L3_NONE,
    PSH,
    SYN,
    PacketRecord,
    decode,
)

PCAPS = Path(__file__).resolve().parents[4].parent / "shared" / "pcaps"
MAC_A, MAC_B = "00:11:22:33:44:55", "66:77:88:99:aa:bb"
_IPV6_EXT = (IPv6ExtHdrHopByHop, IPv6ExtHdrRouting, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment)


def _need_corpus() -> None:
    if not PCAPS.is_dir():
        pytest.skip(f"capture corpus not found at {PCAPS}")


def _dec(pkt: Packet | bytes, linktype: int = 1) -> PacketRecord:
    data = bytes(pkt)
    return decode(123, len(data), linktype, data)


def _segment(pkt: Packet, layer: type[Packet]) -> bytes:
    """The transport segment as Scapy received it: bounded by the IP length, no link padding.

    (``bytes(pkt[TCP].payload)`` is no oracle: application dissectors such as Modbus drop
    bytes they do not claim, e.g. a second ADU in the same segment.)
    """
    return bytes(pkt[layer].original)


def scapy_expect(linktype: int, data: bytes) -> dict[str, Any]:
    """What the decoder should report, read from Scapy's own dissection of ``data``."""
    pkt = conf.l2types[linktype](data)
    exp: dict[str, Any] = {}
    if Ether in pkt or Dot3 in pkt:
        l2 = pkt[Ether] if Ether in pkt else pkt[Dot3]
        exp.update(src_mac=mac2str(l2.src), dst_mac=mac2str(l2.dst))
    if Dot1AD in pkt:
        exp["vlan"] = pkt[Dot1AD].vlan
    elif Dot1Q in pkt:
        exp["vlan"] = pkt[Dot1Q].vlan
    l4_ok = True
    if IP in pkt and pkt[IP].version == 4:
        ip = pkt[IP]
        exp.update(l3=L3_IPV4, src_ip=ip.src, dst_ip=ip.dst, ip_proto=ip.proto, ttl=ip.ttl)
        l4_ok = ip.frag == 0
    elif IPv6 in pkt:
        ip = pkt[IPv6]
        last = ip
        for layer in pkt[IPv6].iterpayloads():
            if isinstance(layer, _IPV6_EXT):
                last = layer
        exp.update(l3=L3_IPV6, src_ip=ip.src, dst_ip=ip.dst, ttl=ip.hlim, ip_proto=last.nh)
        if IPv6ExtHdrFragment in pkt:
            l4_ok = pkt[IPv6ExtHdrFragment].offset == 0
    if l4_ok and TCP in pkt:
        tcp = pkt[TCP]
        exp.update(
            sport=tcp.sport,
            dport=tcp.dport,
            tcp_seq=tcp.seq,
            tcp_flags=int(tcp.flags) & 0xFF,  # Scapy's flags field also holds the NS bit
            payload=_segment(pkt, TCP)[tcp.dataofs * 4 :],
        )
    elif l4_ok and UDP in pkt:
        exp.update(
            sport=pkt[UDP].sport, dport=pkt[UDP].dport, payload=_segment(pkt, UDP)[8 : pkt[UDP].len]
        )
    elif l4_ok and ICMP in pkt:
        exp.update(icmp_type=pkt[ICMP].type, payload=_segment(pkt, ICMP)[8:])
    if ARP in pkt:
        arp = pkt[ARP]
        exp.update(l3=L3_ARP, arp_op=arp.op)
        if arp.hwtype == 1 and arp.ptype == 0x0800:
            exp.update(
                arp_sender_mac=mac2str(arp.hwsrc), arp_sender_ip=arp.psrc, arp_target_ip=arp.pdst
            )
    return exp


def assert_like_scapy(rec: PacketRecord, linktype: int, data: bytes) -> None:
    exp = scapy_expect(linktype, data)
    got = {key: getattr(rec, key) for key in exp}
    assert got == exp


def check(pkt: Packet | bytes, linktype: int = 1) -> PacketRecord:
    data = bytes(pkt)
    rec = _dec(data, linktype)
    assert rec.malformed is None
    assert_like_scapy(rec, linktype, data)
    return rec


# -- frames built with Scapy -----------------------------------------------------------------


def test_modbus_tcp_frame() -> None:
    pdu = ModbusPDU03ReadHoldingRegistersRequest(startAddr=100, quantity=10)
    pkt = (
        Ether(src=MAC_A, dst=MAC_B)
        / IP(src="192.0.2.5", dst="198.51.100.10", ttl=63)
        / TCP(sport=40000, dport=502, seq=12345, flags="PA", options=[("MSS", 1460), ("NOP", None)])
        / ModbusADURequest(transId=7)
        / pdu
    )
    rec = check(pkt)
    assert (rec.ts_ns, rec.wire_len) == (123, len(pkt))
    assert rec.src_mac == bytes.fromhex("001122334455") and rec.dst_mac == bytes.fromhex(
        "66778899aabb"
    )
    assert (rec.ethertype, rec.l3, rec.vlan) == (0x0800, L3_IPV4, None)
    assert (rec.src_ip, rec.dst_ip, rec.ip_proto, rec.ttl) == ("192.0.2.5", "198.51.100.10", 6, 63)
    assert (rec.sport, rec.dport, rec.tcp_seq) == (40000, 502, 12345)
    assert rec.tcp_flags == PSH | ACK
    assert rec.payload == bytes(pkt[ModbusADURequest])


def test_padding_is_trimmed() -> None:
    pkt = Ether(src=MAC_A, dst=MAC_B) / IP() / UDP(sport=1, dport=2) / Raw(b"hi")
    padded = bytes(pkt).ljust(60, b"\0")
    rec = _dec(padded)
    assert rec.payload == b"hi"
    assert_like_scapy(rec, 1, padded)
    syn = bytes(Ether(dst=MAC_B) / IP() / TCP(flags="S")).ljust(60, b"\xaa")
    rec = _dec(syn)
    assert rec.payload == b"" and rec.tcp_flags == SYN


def test_vlan_and_qinq() -> None:
    rec = check(
        Ether(dst=MAC_B) / Dot1Q(vlan=100) / IP(src="10.0.0.1") / UDP(dport=47808) / Raw(b"x")
    )
    assert (rec.vlan, rec.ethertype, rec.dport) == (100, 0x0800, 47808)
    qinq = Ether(dst=MAC_B) / Dot1AD(vlan=200) / Dot1Q(vlan=100) / IPv6() / UDP(dport=5094)
    rec = check(qinq)
    assert (rec.vlan, rec.ethertype, rec.l3) == (200, 0x86DD, L3_IPV6)


def test_ipv4_options() -> None:
    rec = check(
        Ether(dst=MAC_B) / IP(options=[IPOption_RR(routers=["1.2.3.4"])]) / TCP() / Raw(b"data")
    )
    assert rec.payload == b"data"


def test_ipv4_fragments() -> None:
    frags = fragment(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=7, dport=9) / (b"z" * 3000))
    assert len(frags) > 2
    first = check(Ether(dst=MAC_B) / frags[0])
    assert (first.sport, first.dport) == (7, 9)
    for frag in frags[1:]:
        rec = check(Ether(dst=MAC_B) / frag)
        assert (rec.ip_proto, rec.sport, rec.dport) == (17, None, None)
        assert rec.payload == bytes(frag[IP].payload)


def test_ipv6_extension_headers_and_fragments() -> None:
    pkt = (
        Ether(dst=MAC_B)
        / IPv6(src="2001:db8::1", dst="2001:db8::2", hlim=7)
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt()
        / TCP(sport=1234, dport=502)
        / Raw(b"mb")
    )
    rec = check(pkt)
    assert (rec.src_ip, rec.dst_ip, rec.ttl, rec.ip_proto) == ("2001:db8::1", "2001:db8::2", 7, 6)
    assert rec.payload == b"mb"
    big = IPv6(dst="2001:db8::9") / IPv6ExtHdrFragment() / UDP(sport=5, dport=6) / (b"q" * 3000)
    frags = fragment6(big, 1280)
    assert len(frags) > 2
    assert (check(Ether(dst=MAC_B) / frags[0]).sport, check(Ether(dst=MAC_B) / frags[0]).dport) == (
        5,
        6,
    )
    for frag in frags[1:]:
        rec = check(Ether(dst=MAC_B) / frag)
        assert (rec.ip_proto, rec.sport) == (17, None)
        assert rec.payload == bytes(frag[IPv6ExtHdrFragment].payload)


def test_icmp_and_icmpv6() -> None:
    rec = check(Ether(dst=MAC_B) / IP() / ICMP(type=8) / Raw(b"ping"))
    assert (rec.ip_proto, rec.icmp_type, rec.payload) == (1, 8, b"ping")
    quoted = IP(src="192.0.2.1") / UDP(sport=5, dport=53)
    rec = check(Ether(dst=MAC_B) / IP() / ICMP(type=3, code=3) / quoted)
    assert rec.icmp_type == 3 and rec.payload == bytes(quoted)
    rec = _dec(Ether(dst=MAC_B) / IPv6() / ICMPv6EchoRequest(data=b"v6"))
    assert (rec.ip_proto, rec.icmp_type, rec.payload, rec.malformed) == (58, 128, b"v6", None)


def test_arp() -> None:
    req = Ether(src=MAC_A, dst=MAC_B) / ARP(op=1, hwsrc=MAC_A, psrc="192.0.2.1", pdst="192.0.2.99")
    rec = check(req)
    assert (rec.l3, rec.ethertype, rec.arp_op) == (L3_ARP, 0x0806, 1)
    assert rec.arp_sender_mac == bytes.fromhex("001122334455")
    assert (rec.arp_sender_ip, rec.arp_target_ip) == ("192.0.2.1", "192.0.2.99")
    assert rec.src_ip is None and rec.payload == b""
    other = check(Ether(dst=MAC_B) / ARP(hwtype=6, op=2))
    assert (other.arp_op, other.arp_sender_ip, other.arp_sender_mac) == (2, None, None)


def test_llc_and_layer2_protocols() -> None:
    stp = Dot3(dst="01:80:c2:00:00:00", src=MAC_A) / LLC() / STP()
    padded = bytes(stp).ljust(60, b"\0")
    rec = check(padded)
    assert (rec.ethertype, rec.l3) == (None, L3_NONE)
    assert rec.payload == bytes(stp[LLC])
    for ethertype in (0x8892, 0x88B8, 0x88CC):  # PROFINET, GOOSE, LLDP
        rec = check(Ether(src=MAC_A, dst=MAC_B, type=ethertype) / Raw(b"\x01\x02body"))
        assert (rec.ethertype, rec.l3, rec.payload) == (ethertype, L3_NONE, b"\x01\x02body")


def test_other_link_types() -> None:
    ip4 = IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=1, dport=2) / Raw(b"p")
    ip6 = IPv6(src="2001:db8::1") / UDP(sport=3, dport=4) / Raw(b"q")
    rec = check(CookedLinux(src=bytes.fromhex("001122334455") + b"\0\0", lladdrlen=6) / ip4, 113)
    assert rec.src_mac == bytes.fromhex("001122334455") and rec.dst_mac is None
    rec = check(CookedLinuxV2(src=bytes.fromhex("00112233445566"), lladdrlen=6) / ip6, 276)
    assert (rec.src_mac, rec.sport) == (bytes.fromhex("001122334455"), 3)
    for linktype in (101, 12):
        assert check(ip4, linktype).src_ip == "192.0.2.1"
        assert check(ip6, linktype).src_ip == "2001:db8::1"
    assert check(ip4, 228).sport == 1
    assert check(ip6, 229).dport == 4
    for family, layer in ((struct.pack("<I", 2), ip4), (struct.pack(">I", 30), ip6)):
        rec = _dec(family + bytes(layer), 0)
        assert rec.malformed is None and rec.payload in (b"p", b"q")
        assert rec.l3 == (L3_IPV4 if layer is ip4 else L3_IPV6)
    assert _dec(struct.pack(">I", 24) + bytes(ip6), 108).l3 == L3_IPV6


# -- malformed input -------------------------------------------------------------------------


def test_malformed_reasons() -> None:
    tcp = bytes(
        Ether(dst=MAC_B) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=5, dport=502) / b"abcd"
    )
    assert _dec(tcp[:10]).malformed == "ethernet: frame shorter than 14 bytes"
    assert _dec(tcp[:20]).malformed == "ipv4: header shorter than 20 bytes"
    short = decode(0, len(tcp), 1, tcp[:40])  # cut by snaplen inside the TCP header
    assert (short.malformed, short.sport, short.dport) == (
        "tcp: header shorter than 20 bytes",
        5,
        502,
    )
    assert short.src_ip == "10.0.0.1"
    bad_doff = bytearray(tcp)
    bad_doff[46] = 0xF0
    assert _dec(bytes(bad_doff)).malformed == "tcp: data offset beyond packet"
    bad_doff[46] = 0x20
    assert _dec(bytes(bad_doff)).malformed == "tcp: bad data offset 2"
    udp = bytearray(bytes(Ether(dst=MAC_B) / IP() / UDP() / b"xyz"))
    udp[38:40] = b"\x00\x04"
    assert _dec(bytes(udp)).malformed == "udp: bad length 4"
    udp[38:40] = b"\x01\x00"
    assert _dec(bytes(udp)).malformed == "udp: length 256 beyond packet"
    ip_len = bytearray(tcp)
    ip_len[16:18] = b"\x05\xdc"
    rec = _dec(bytes(ip_len))
    assert rec.malformed == "ipv4: total length 1500 beyond packet" and rec.payload == b"abcd"
    version = bytearray(tcp)
    version[14] = 0x55
    assert _dec(bytes(version)).malformed == "ipv4: version 5"
    deep = bytes(Ether(dst=MAC_B, type=0x8100)) + b"\x00\x01\x81\x00" * 9 + b"\x00\x01\x08\x00"
    assert _dec(deep).malformed == "vlan: too many tags"
    assert _dec(bytes(Ether(dst=MAC_B, type=0x8100)) + b"\x00").malformed == "vlan: tag truncated"
    ext = bytes(Ether(dst=MAC_B) / IPv6(nh=0, plen=4) / b"\x06\x05\x00\x00")
    assert _dec(ext).malformed == "ipv6: extension header beyond packet"
    assert _dec(b"\x45" * 30, 147).malformed == "link: unsupported link type 147"
    assert _dec(b"\x00" * 12 + b"\x08\x06" + b"\x00\x01\x08\x00\x06\x04\x00\x01").malformed == (
        "arp: shorter than 28 bytes"
    )


def test_every_truncation_of_a_frame() -> None:
    frames = [
        Ether(dst=MAC_B)
        / Dot1Q(vlan=5)
        / IP(options=[IPOption_RR()])
        / TCP(options=[("MSS", 1)])
        / b"x",
        Ether(dst=MAC_B) / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment() / UDP() / b"y",
        Ether(dst=MAC_B) / ARP(),
        Ether(dst=MAC_B) / IP() / ICMP() / b"z",
    ]
    for pkt in frames:
        data = bytes(pkt)
        for cut in range(len(data)):
            rec = decode(0, len(data), 1, data[:cut])
            assert isinstance(rec.payload, bytes)


def test_malformed_corpus_files() -> None:
    _need_corpus()
    expected = {
        "eth_caplen8.pcap": "ethernet: frame shorter than 14 bytes",
        "ipv4_bogus_ihl.pcap": "ipv4: bad IHL 15",
    }
    for name, reason in expected.items():
        with open_capture(PCAPS / "malformed" / name) as cap:
            (frame,) = list(cap)
        rec = decode(*frame)
        assert rec.malformed == reason
    with open_capture(PCAPS / "malformed" / "ipv4_bogus_ihl.pcap") as cap:
        rec = decode(*next(iter(cap)))
    assert rec.src_ip is not None and rec.sport is None and rec.payload == b""


# -- corpus ----------------------------------------------------------------------------------

_COMPARED = [
    "modbus_polling_writes.pcap",
    "nmap_host_discovery.pcap",
    "hart_ip.pcapng",
    "arp_linux_sll.pcap",
    "it_wikipedia_dns_http.pcap",
    "bacnet_stack_services.pcap",
    "iec61850_mms_goose.pcap",
    "enip_remote_mode_change.pcap",
]


def test_all_corpus_files_decode() -> None:
    _need_corpus()
    files = sorted(PCAPS.glob("*.pcap*")) + sorted((PCAPS / "malformed").glob("*.pcap*"))
    assert len(files) >= 30
    total = malformed = 0
    for path in files:
        with open_capture(path) as cap:
            for frame in cap:
                rec = decode(*frame)
                total += 1
                malformed += rec.malformed is not None
    assert total > 30_000
    assert malformed < 10  # the fuzz trace and the two deliberately broken frames


@pytest.mark.parametrize("name", _COMPARED)
def test_corpus_fields_agree_with_scapy(name: str) -> None:
    _need_corpus()
    with open_capture(PCAPS / name) as cap:
        for number, (ts, wire, linktype, data) in enumerate(cap, 1):
            rec = decode(ts, wire, linktype, data)
            assert rec.malformed is None, (name, number)
            exp = scapy_expect(linktype, data)
            got = {key: getattr(rec, key) for key in exp}
            assert got == exp, (name, number)


# -- robustness and small API ----------------------------------------------------------------

_LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]
_SEED_FRAMES = [
    bytes(Ether(dst=MAC_B) / Dot1Q() / IP() / TCP() / b"abc"),
    bytes(Ether(dst=MAC_B) / IPv6() / IPv6ExtHdrRouting() / IPv6ExtHdrFragment() / UDP() / b"d"),
    bytes(Ether(dst=MAC_B) / ARP()),
    bytes(Ether(dst=MAC_B) / IP() / ICMP()),
]


@settings(max_examples=1000, deadline=None)
@given(linktype=st.sampled_from(_LINKTYPES), data=st.binary(max_size=120))
def test_random_bytes_never_raise(linktype: int, data: bytes) -> None:
    rec = decode(0, len(data), linktype, data)
    assert isinstance(rec.payload, bytes)
    assert rec.malformed is None or isinstance(rec.malformed, str)


@settings(max_examples=1000, deadline=None)
@given(
    seed=st.sampled_from(_SEED_FRAMES),
    flips=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, 200),
)
def test_mutated_frames_never_raise(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    rec = decode(0, len(seed), 1, bytes(data[: max(cut, 14)]))
    assert isinstance(rec.payload, bytes)


def test_address_text_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(headers, "_IP_CACHE_MAX", 50)
    monkeypatch.setattr(headers, "_ip4_text", {})
    for i in range(300):
        rec = _dec(Ether(dst=MAC_B) / IP(src=f"10.1.{i // 250}.{i % 250}", dst="10.9.9.9") / UDP())
        assert rec.src_ip == f"10.1.{i // 250}.{i % 250}"
    assert len(headers._ip4_text) <= 51


def test_record_repr_and_dict() -> None:
    rec = _dec(Ether(dst=MAC_B) / IP() / UDP(dport=502) / b"abc")
    assert rec.as_dict()["dport"] == 502
    assert "dport=502" in repr(rec) and "payload=3 bytes" in repr(rec)
