"""DNS messages (RFC 1035) decoded with ``struct``: header, first question, bounded answers.

Used for DNS on 53 (UDP, and TCP with its 2-byte length prefix) and for the DNS-formatted
mDNS and LLMNR. :func:`parse_dns` never raises: anything that does not parse as DNS returns
None, and a truncated answer section keeps the answers decoded before it.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = [
    "NXDOMAIN",
    "QTYPE_NAMES",
    "DnsAnswer",
    "DnsMessage",
    "parse_dns",
    "parse_dns_tcp",
]

NXDOMAIN = 3
QTYPE_NAMES = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
    33: "SRV", 35: "NAPTR", 65: "HTTPS", 255: "ANY",
}  # fmt: skip
MAX_ANSWERS = 32
_MAX_NAME = 255
_MAX_JUMPS = 16
_header = struct.Struct("!HHHHHH").unpack_from
_rr = struct.Struct("!HHIH").unpack_from
_u16 = struct.Struct("!H").unpack_from


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    rtype: int
    value: str | None
    """Address text for A/AAAA, the target name for CNAME/PTR/NS, else None."""


@dataclass(frozen=True, slots=True)
class DnsMessage:
    id: int
    is_response: bool
    opcode: int
    rcode: int
    qdcount: int
    ancount: int
    qname: str | None
    """The first question's name, lower case without the trailing dot."""
    qtype: int | None
    answers: tuple[DnsAnswer, ...]

    @property
    def qtype_name(self) -> str:
        if self.qtype is None:
            return "-"
        return QTYPE_NAMES.get(self.qtype, str(self.qtype))


def _name(data: bytes, off: int) -> tuple[str | None, int]:
    """Read a possibly compressed name; returns (name, offset after it in the record)."""
    labels: list[str] = []
    size = len(data)
    end = -1
    jumps = total = 0
    while True:
        if off >= size:
            return None, -1
        length = data[off]
        if length == 0:
            off += 1
            break
        if length & 0xC0 == 0xC0:
            if off + 1 >= size or jumps >= _MAX_JUMPS:
                return None, -1
            if end < 0:
                end = off + 2
            off = ((length & 0x3F) << 8) | data[off + 1]
            jumps += 1
            continue
        if length & 0xC0:
            return None, -1
        total += length + 1
        if total > _MAX_NAME or off + 1 + length > size:
            return None, -1
        labels.append(data[off + 1 : off + 1 + length].decode("ascii", "replace").lower())
        off += 1 + length
    return ".".join(labels), (end if end >= 0 else off)


def parse_dns(data: bytes) -> DnsMessage | None:
    """Decode one DNS message; None when it is not plausibly DNS."""
    if len(data) < 12:
        return None
    try:
        ident, flags, qd, an, _ns, _ar = _header(data, 0)
        opcode = (flags >> 11) & 0xF
        if opcode > 6 or qd > 16:
            return None
        qname = qtype = None
        off = 12
        if qd:
            qname, off = _name(data, off)
            if qname is None or off + 4 > len(data):
                return None
            qtype = _u16(data, off)[0]
            off += 4
            for _ in range(qd - 1):
                _skip, off = _name(data, off)
                if off < 0 or off + 4 > len(data):
                    break
                off += 4
        answers: list[DnsAnswer] = []
        for _ in range(min(an, MAX_ANSWERS)):
            if off < 0:
                break
            name, off = _name(data, off)
            if name is None or off + 10 > len(data):
                break
            rtype, _rclass, _ttl, rdlen = _rr(data, off)
            off += 10
            if off + rdlen > len(data):
                break
            value = None
            if rtype == 1 and rdlen == 4:
                value = socket.inet_ntoa(data[off : off + 4])
            elif rtype == 28 and rdlen == 16:
                value = socket.inet_ntop(socket.AF_INET6, data[off : off + 16])
            elif rtype in (2, 5, 12):
                value, _ = _name(data, off)
            answers.append(DnsAnswer(name, rtype, value))
            off += rdlen
        return DnsMessage(
            ident, bool(flags & 0x8000), opcode, flags & 0xF, qd, an, qname, qtype,
            tuple(answers),
        )  # fmt: skip
    except (struct.error, IndexError, ValueError, OSError):
        return None


def parse_dns_tcp(data: bytes) -> DnsMessage | None:
    """DNS over TCP: the first message of a segment, after its 2-byte length prefix."""
    if len(data) < 14:
        return None
    length = _u16(data, 0)[0]
    if length < 12:
        return None
    return parse_dns(data[2 : 2 + length])
