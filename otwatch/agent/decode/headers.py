"""Fast link/network/transport header decode into a flat :class:`PacketRecord`.

This is the sensor's hot path, so it uses precompiled ``struct`` objects and checks lengths
before every unpack instead of Scapy. :func:`decode` never raises: a broken or truncated
header stops decoding at that layer and sets ``malformed`` to a short reason such as
``"ipv4: bad IHL 15"``; the fields of the layers above it stay ``None``.
"""

from __future__ import annotations

import socket
import struct

from otwatch.agent.decode.ipv6 import _IP_CACHE_MAX, _ipv6

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "L3_ARP",
    "L3_IPV4",
    "L3_IPV6",
    "L3_NONE",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "PSH",
    "RST",
    "SYN",
    "URG",
    "PacketRecord",
    "decode",
    "decode_frame",
]

L3_NONE, L3_ARP, L3_IPV4, L3_IPV6 = 0, 1, 4, 6
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
_RAW_IP_LINKTYPES = frozenset((LINKTYPE_RAW, 12, 14))  # DLT_RAW is 12 or 14 on some BSDs

_ETHERTYPE_IPV4, _ETHERTYPE_ARP, _ETHERTYPE_IPV6 = 0x0800, 0x0806, 0x86DD
_VLAN_TPIDS = frozenset((0x8100, 0x88A8, 0x9100))
_MAX_VLAN_TAGS = 8
_AF_INET6 = frozenset((10, 24, 28, 30))  # Linux, OpenBSD/NetBSD, FreeBSD, macOS


_eth = struct.Struct("!6s6sH").unpack_from
_fast = struct.Struct("!6s6sHBxHxxHBBxx4s4sHHI4xBB").unpack_from
_vlan = _ports = struct.Struct("!HH").unpack_from
_ip4 = struct.Struct("!BxHxxHBBxx4s4s").unpack_from
_tcp = struct.Struct("!HHI4xBB").unpack_from
_udp = struct.Struct("!HHH").unpack_from
_u16 = struct.Struct("!H").unpack_from
_arp = struct.Struct("!HHBBH6s4s6x4s").unpack_from
_sll = struct.Struct("!HHH8sH").unpack_from
_sll2 = struct.Struct("!H6xHBB8s").unpack_from
_u32le = struct.Struct("<I").unpack_from
_u32be = struct.Struct(">I").unpack_from
_ntoa = socket.inet_ntoa

# Small bounded caches of address text: most traffic on an OT network is between few hosts.
_ip4_text: dict[bytes, str] = {}


class PacketRecord:
    """Decoded headers of one frame; absent or undecodable fields are ``None``.

    ``l3`` names the network header the link layer announced (even when it is broken).
    ``payload`` is the innermost payload decoded: the L4 payload for TCP/UDP/ICMP (after the
    8-byte ICMP header), the L3 payload for other IP protocols and non-first fragments, the L2
    payload for other ethertypes and LLC frames, empty when a header is broken. Padding is
    trimmed using the IP, UDP and 802.3 length fields. ``ethertype`` is the one after any VLAN
    tags; for link types without one (raw IP, loopback) it is the implied one, and it is
    ``None`` for 802.3/LLC frames.
    """

    __slots__ = (
        "arp_op",
        "arp_sender_ip",
        "arp_sender_mac",
        "arp_target_ip",
        "dport",
        "dst_ip",
        "dst_mac",
        "ethertype",
        "icmp_type",
        "ip_proto",
        "l3",
        "malformed",
        "payload",
        "sport",
        "src_ip",
        "src_mac",
        "tcp_flags",
        "tcp_seq",
        "ts_ns",
        "ttl",
        "vlan",
        "wire_len",
    )

    ts_ns: int
    wire_len: int
    src_mac: bytes | None
    dst_mac: bytes | None
    vlan: int | None
    ethertype: int | None
    l3: int
    src_ip: str | None
    dst_ip: str | None
    ip_proto: int | None
    ttl: int | None
    sport: int | None
    dport: int | None
    tcp_flags: int | None
    tcp_seq: int | None
    icmp_type: int | None
    arp_op: int | None
    arp_sender_mac: bytes | None
    arp_sender_ip: str | None
    arp_target_ip: str | None
    payload: bytes
    malformed: str | None

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={value!r}"
            for name, value in self.as_dict().items()
            if value is not None and name != "payload"
        )
        return f"PacketRecord({fields}, payload={len(self.payload)} bytes)"


def _ip4_str(raw: bytes) -> str:
    """Text of a 4-byte address not yet in the cache (which is emptied when full)."""
    if len(_ip4_text) >= _IP_CACHE_MAX:
        _ip4_text.clear()
    text = _ip4_text[raw] = _ntoa(raw)
    return text


def _link(linktype: int, data: bytes, n: int) -> tuple[int, int | None, bytes | None, str | None]:
    """Non-Ethernet link layers: ``(offset, ethertype, src_mac, malformed)``; offset -1 = stop."""
    if linktype == LINKTYPE_LINUX_SLL:
        if n < 16:
            return -1, None, None, "sll: frame shorter than 16 bytes"
        _, _, halen, addr, proto = _sll(data, 0)
        return 16, proto, (addr[:6] if halen == 6 else None), None
    if linktype == LINKTYPE_LINUX_SLL2:
        if n < 20:
            return -1, None, None, "sll2: frame shorter than 20 bytes"
        proto, _, _, halen, addr = _sll2(data, 0)
        return 20, proto, (addr[:6] if halen == 6 else None), None
    if linktype in _RAW_IP_LINKTYPES or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        if linktype == LINKTYPE_IPV4:
            return 0, _ETHERTYPE_IPV4, None, None
        if linktype == LINKTYPE_IPV6:
            return 0, _ETHERTYPE_IPV6, None, None
        if not n:
            return -1, None, None, "raw: empty packet"
        version = data[0] >> 4
        if version == 4:
            return 0, _ETHERTYPE_IPV4, None, None
        if version == 6:
            return 0, _ETHERTYPE_IPV6, None, None
        return -1, None, None, f"raw: IP version {version}"
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if n < 4:
            return -1, None, None, "loopback: frame shorter than 4 bytes"
        # NULL: address family in the capturing host's byte order; LOOP: always big-endian.
        family = _u32be(data, 0)[0] if linktype == LINKTYPE_LOOP else _u32le(data, 0)[0]
        if family > 0xFFFF:
            family = _u32be(data, 0)[0]
        if family == 2:
            return 4, _ETHERTYPE_IPV4, None, None
        if family in _AF_INET6:
            return 4, _ETHERTYPE_IPV6, None, None
        return 4, None, None, None
    return -1, None, None, f"link: unsupported link type {linktype}"


def _arp_fields(
    data: bytes, off: int, n: int
) -> tuple[int | None, bytes | None, str | None, str | None, str | None]:
    """``(op, sender_mac, sender_ip, target_ip, malformed)``; addresses only for Ethernet/IPv4."""
    if n - off < 8:
        return None, None, None, None, "arp: header shorter than 8 bytes"
    op = _u16(data, off + 6)[0]
    if data[off : off + 6] != b"\x00\x01\x08\x00\x06\x04":
        return op, None, None, None, None
    if n - off < 28:
        return op, None, None, None, "arp: shorter than 28 bytes"
    _, _, _, _, _, smac, sip, tip = _arp(data, off)
    return op, smac, _ntoa(sip), _ntoa(tip), None


def decode(ts_ns: int, wire_len: int, linktype: int, data: bytes) -> PacketRecord:
    """Decode one captured frame; never raises (broken headers set ``malformed``).

    The dominant shape on a plant network, an untagged Ethernet frame with a 20-byte IPv4
    header and a whole, well-formed TCP segment or UDP datagram, takes a short path; every
    other frame (and any doubt) goes through :func:`decode_frame`, which gives the same
    record for these frames too (``tests/unit/agent/decode`` checks both on every corpus
    frame)."""
    n = len(data)
    if linktype != 1 or n < 54:
        return decode_frame(ts_ns, wire_len, linktype, data)
    (dst_mac, src_mac, et, vihl, tlen, frag, ttl, proto, src, dst, sport, dport, seq, doff,
     flags) = _fast(data, 0)  # fmt: skip
    end = 14 + tlen
    if et != 0x0800 or vihl != 0x45 or frag & 0x1FFF or end > n or tlen < 28:
        return decode_frame(ts_ns, wire_len, linktype, data)
    if proto == 6:
        start = 34 + ((doff >> 4) << 2)
        if doff < 0x50 or start > end:
            return decode_frame(ts_ns, wire_len, linktype, data)
        rec = PacketRecord()
        rec.tcp_flags = flags
        rec.tcp_seq = seq
    elif proto == 17:
        ulen = seq >> 16  # the "seq" word of this view is the UDP length and checksum
        if ulen < 8 or ulen > tlen - 20:
            return decode_frame(ts_ns, wire_len, linktype, data)
        start, end = 42, 34 + ulen
        rec = PacketRecord()
        rec.tcp_flags = rec.tcp_seq = None
    else:
        return decode_frame(ts_ns, wire_len, linktype, data)
    rec.ts_ns = ts_ns
    rec.wire_len = wire_len
    rec.src_mac = src_mac
    rec.dst_mac = dst_mac
    rec.ethertype = 0x0800
    rec.l3 = L3_IPV4
    rec.src_ip = _ip4_text.get(src) or _ip4_str(src)
    rec.dst_ip = _ip4_text.get(dst) or _ip4_str(dst)
    rec.ip_proto = proto
    rec.ttl = ttl
    rec.sport = sport
    rec.dport = dport
    rec.payload = data[start:end]
    rec.vlan = rec.icmp_type = rec.malformed = None
    rec.arp_op = rec.arp_sender_mac = rec.arp_sender_ip = rec.arp_target_ip = None
    return rec


def decode_frame(ts_ns: int, wire_len: int, linktype: int, data: bytes) -> PacketRecord:
    """Decode any captured frame, layer by layer; never raises."""
    src_mac = dst_mac = vlan = ethertype = None
    l3 = L3_NONE
    src_ip = dst_ip = None
    ip_proto = ttl = sport = dport = tcp_flags = tcp_seq = icmp_type = None
    arp_op = arp_sender_mac = arp_sender_ip = arp_target_ip = None
    payload = b""
    malformed = None
    try:
        n = len(data)
        # -- link layer: off is where the network header starts, -1 means stop
        fast = False
        if linktype == 1:
            if n >= 54:
                # Speculative single unpack of Ethernet + 20-byte IPv4 + 20 bytes of L4 header:
                # one struct call instead of three for the dominant frame shape. The x* values
                # are only used once the headers they assume are confirmed.
                (dst_mac, src_mac, et, vihl, tlen, frag, xttl, xproto, src, dst,
                 xsport, xdport, xseq, xdoff, xflags) = _fast(data, 0)  # fmt: skip
                off = 14
                fast = vihl == 0x45
            elif n >= 14:
                dst_mac, src_mac, et = _eth(data, 0)
                off = 14
            else:
                off = -1
                malformed = "ethernet: frame shorter than 14 bytes"
        else:
            off, et, src_mac, malformed = _link(linktype, data, n)
        if off >= 0 and et in _VLAN_TPIDS:
            fast = False
            for _ in range(_MAX_VLAN_TAGS):
                if off + 4 > n:
                    off = -1
                    malformed = "vlan: tag truncated"
                    break
                tci, et = _vlan(data, off)
                off += 4
                if vlan is None:
                    vlan = tci & 0xFFF
                if et not in _VLAN_TPIDS:
                    break
            else:
                off = -1
                malformed = "vlan: too many tags"
        # -- network layer: l4 is where the transport header starts, -1 means stop
        l4 = -1
        if off < 0:
            pass
        elif et == 0x0800:
            ethertype = et
            l3 = L3_IPV4
            if not fast:
                if n - off >= 20:
                    vihl, tlen, frag, xttl, xproto, src, dst = _ip4(data, off)
                else:
                    vihl = -1
            if vihl >> 4 != 4:
                fast = False
                if vihl < 0:
                    malformed = "ipv4: header shorter than 20 bytes"
                else:
                    malformed = f"ipv4: version {vihl >> 4}"
            else:
                ttl = xttl
                ip_proto = xproto
                src_ip = _ip4_text.get(src) or _ip4_str(src)
                dst_ip = _ip4_text.get(dst) or _ip4_str(dst)
                ihl = (vihl & 15) << 2
                end = off + tlen
                if ihl < 20 or off + ihl > n:
                    malformed = f"ipv4: bad IHL {ihl >> 2}"
                elif tlen < ihl and tlen:
                    malformed = f"ipv4: total length {tlen} shorter than header"
                else:
                    if end > n or not tlen:  # cut by snaplen, or segmentation offload
                        if tlen and n == wire_len:
                            malformed = f"ipv4: total length {tlen} beyond packet"
                        end = n
                    l4 = off + ihl
                    if frag & 0x1FFF:  # non-first fragment: no transport header here
                        payload = data[l4:end]
                        l4 = -1
        elif et is None or et < 1536:  # 802.3 length field: LLC frame (or unknown SLL protocol)
            payload = data[off : off + et] if et is not None and linktype == 1 else data[off:]
        elif et == 0x86DD:
            ethertype = et
            l3 = L3_IPV6
            fast = False
            src_ip, dst_ip, ip_proto, ttl, l4, end, nonfirst, frag, malformed = _ipv6(
                data, off, n, wire_len
            )
            if nonfirst:
                payload = data[l4:end]
                l4 = -1
            elif frag:
                frag = 0x2000
        elif et == 0x0806:
            ethertype = et
            l3 = L3_ARP
            arp_op, arp_sender_mac, arp_sender_ip, arp_target_ip, malformed = _arp_fields(
                data, off, n
            )
        else:
            ethertype = et
            payload = data[off:]
        # -- transport layer (fast: its first 20 bytes are already unpacked into x*)
        if l4 >= 0:
            avail = end - l4
            if ip_proto == 6:
                if avail >= 20:
                    if fast:
                        sport, dport, tcp_seq, doff, tcp_flags = xsport, xdport, xseq, xdoff, xflags
                    else:
                        sport, dport, tcp_seq, doff, tcp_flags = _tcp(data, l4)
                    doff = (doff >> 4) << 2
                    if doff < 20:
                        malformed = f"tcp: bad data offset {doff >> 2}"
                    elif l4 + doff > end:
                        malformed = "tcp: data offset beyond packet"
                    else:
                        payload = data[l4 + doff : end]
                else:
                    malformed = "tcp: header shorter than 20 bytes"
                    if avail >= 4:
                        sport, dport = _ports(data, l4)
            elif ip_proto == 17:
                if avail >= 8:
                    if fast:  # the "seq" word of the speculative TCP view is length + checksum
                        sport, dport, ulen = xsport, xdport, xseq >> 16
                    else:
                        sport, dport, ulen = _udp(data, l4)
                    if ulen < 8:
                        malformed = f"udp: bad length {ulen}"
                    elif ulen > avail:
                        payload = data[l4 + 8 : end]
                        if n == wire_len and not frag & 0x2000:
                            malformed = f"udp: length {ulen} beyond packet"
                    else:
                        payload = data[l4 + 8 : l4 + ulen]
                else:
                    malformed = "udp: header shorter than 8 bytes"
                    if avail >= 4:
                        sport, dport = _ports(data, l4)
            elif ip_proto == 1 or ip_proto == 58:
                if avail >= 1:
                    icmp_type = data[l4]
                if avail >= 8:
                    payload = data[l4 + 8 : end]
                else:
                    malformed = "icmp: header shorter than 8 bytes"
            else:
                payload = data[l4:end]
    except (struct.error, IndexError, ValueError, TypeError) as exc:  # safety net only
        malformed = f"decode: {type(exc).__name__}"
    rec = PacketRecord()
    rec.ts_ns = ts_ns
    rec.wire_len = wire_len
    rec.src_mac = src_mac
    rec.dst_mac = dst_mac
    rec.vlan = vlan
    rec.ethertype = ethertype
    rec.l3 = l3
    rec.src_ip = src_ip
    rec.dst_ip = dst_ip
    rec.ip_proto = ip_proto
    rec.ttl = ttl
    rec.sport = sport
    rec.dport = dport
    rec.tcp_flags = tcp_flags
    rec.tcp_seq = tcp_seq
    rec.icmp_type = icmp_type
    rec.arp_op = arp_op
    rec.arp_sender_mac = arp_sender_mac
    rec.arp_sender_ip = arp_sender_ip
    rec.arp_target_ip = arp_target_ip
    rec.payload = payload
    rec.malformed = malformed
    return rec
