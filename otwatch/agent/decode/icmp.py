"""ICMP and ICMPv6 message classes, and the datagram quoted inside an ICMP error.

The header decoder already gives the ICMP type and the payload after the 8-byte ICMP header;
for error messages (destination unreachable, time exceeded) that payload starts with the
header of the datagram that failed, which :func:`quoted_datagram` reads. Never raises.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = [
    "ECHO_REPLY_TYPES",
    "ECHO_REQUEST_TYPES",
    "ERROR_TYPES",
    "ND_TYPES",
    "QuotedDatagram",
    "quoted_datagram",
]

ECHO_REQUEST_TYPES = frozenset({8, 128})
ECHO_REPLY_TYPES = frozenset({0, 129})
ERROR_TYPES = {1: frozenset({3, 11, 12}), 58: frozenset({1, 3, 4})}
"""ICMP error types by IP protocol (1 = ICMP, 58 = ICMPv6)."""
ND_TYPES = frozenset({130, 131, 132, 133, 134, 135, 136, 137, 143})
"""ICMPv6 neighbour discovery and multicast listener messages: link housekeeping."""
_ip4 = struct.Struct("!B8xB2x4s4s").unpack_from
_ports = struct.Struct("!HH").unpack_from


@dataclass(frozen=True, slots=True)
class QuotedDatagram:
    src: str
    dst: str
    proto: int
    sport: int | None
    dport: int | None


def quoted_datagram(ip_proto: int | None, icmp_type: int | None, payload: bytes):
    """The failed datagram quoted by an ICMP(v6) error, or None."""
    if ip_proto is None or icmp_type not in ERROR_TYPES.get(ip_proto, ()):
        return None
    try:
        if ip_proto == 1:
            if len(payload) < 20:
                return None
            vihl, proto, src, dst = _ip4(payload, 0)
            if vihl >> 4 != 4:
                return None
            l4 = (vihl & 15) * 4
            src_text, dst_text = socket.inet_ntoa(src), socket.inet_ntoa(dst)
        else:
            if len(payload) < 40 or payload[0] >> 4 != 6:
                return None
            proto, l4 = payload[6], 40
            src_text = socket.inet_ntop(socket.AF_INET6, payload[8:24])
            dst_text = socket.inet_ntop(socket.AF_INET6, payload[24:40])
        sport = dport = None
        if proto in (6, 17) and len(payload) >= l4 + 4:
            sport, dport = _ports(payload, l4)
        return QuotedDatagram(src_text, dst_text, proto, sport, dport)
    except (struct.error, IndexError, OSError):
        return None
