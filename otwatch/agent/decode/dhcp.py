"""DHCP messages (RFC 2131/2132): the BOOTP header and the options a detector needs.

:func:`parse_dhcp` reads the message type (option 53), requested address (50), server id
(54) and host name (12) from a UDP 67/68 payload; it never raises and returns None for
anything that is not a DHCP message (no magic cookie or no message type).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

__all__ = [
    "ACK",
    "DECLINE",
    "DISCOVER",
    "INFORM",
    "MESSAGE_NAMES",
    "NAK",
    "OFFER",
    "RELEASE",
    "REQUEST",
    "DhcpMessage",
    "parse_dhcp",
]

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = 1, 2, 3, 4, 5, 6, 7, 8
MESSAGE_NAMES = {
    DISCOVER: "DISCOVER", OFFER: "OFFER", REQUEST: "REQUEST", DECLINE: "DECLINE", ACK: "ACK",
    NAK: "NAK", RELEASE: "RELEASE", INFORM: "INFORM",
}  # fmt: skip
_MAGIC = b"\x63\x82\x53\x63"
_bootp = struct.Struct("!BBBBIHH4s4s4s4s16s").unpack_from


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    op: int
    """1 = from a client (BOOTREQUEST), 2 = from a server (BOOTREPLY)."""
    xid: int
    client_mac: str | None
    """The client hardware address (chaddr) for Ethernet, as aa:bb:..."""
    ciaddr: str
    yiaddr: str
    message_type: int
    requested_ip: str | None
    server_id: str | None
    hostname: str | None

    @property
    def type_name(self) -> str:
        return MESSAGE_NAMES.get(self.message_type, str(self.message_type))


def parse_dhcp(payload: bytes) -> DhcpMessage | None:
    if len(payload) < 240 or payload[236:240] != _MAGIC:
        return None
    try:
        op, htype, hlen, _hops, xid, _secs, _flags, ci, yi, _si, _gi, chaddr = _bootp(payload, 0)
        message_type = requested = server_id = hostname = None
        off, size = 240, len(payload)
        while off < size:
            code = payload[off]
            if code == 255:
                break
            if code == 0:
                off += 1
                continue
            if off + 1 >= size:
                break
            length = payload[off + 1]
            value = payload[off + 2 : off + 2 + length]
            if len(value) < length:
                break
            if code == 53 and length == 1:
                message_type = value[0]
            elif code == 50 and length == 4:
                requested = socket.inet_ntoa(value)
            elif code == 54 and length == 4:
                server_id = socket.inet_ntoa(value)
            elif code == 12 and length:
                hostname = value.decode("ascii", "replace")
            off += 2 + length
        if message_type is None or op not in (1, 2):
            return None
        mac = chaddr[:6].hex(":") if htype == 1 and hlen == 6 else None
        return DhcpMessage(
            op, xid, mac, socket.inet_ntoa(ci), socket.inet_ntoa(yi), message_type,
            requested, server_id, hostname,
        )  # fmt: skip
    except (struct.error, IndexError, OSError):
        return None
