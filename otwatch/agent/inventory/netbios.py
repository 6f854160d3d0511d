"""NetBIOS names of devices (pure): NBNS (UDP 137) and NetBIOS Datagram (UDP 138).

Only messages that say which address holds a name count: a positive name query response
and a name registration/refresh (NB records: name → IPv4 in the record's data), a node
status response (every unique name of the responder), and a datagram's source name (the
header's source IP). Queries name nobody. Names are the 15 characters before the suffix,
trimmed and lower-cased; only unique names with the workstation (0x00) or server (0x20)
suffix are device names (group names, domain and browser names are not).
"""

from __future__ import annotations

import struct

__all__ = ["decode_name", "nbdgm_source", "nbns_names"]

_H = struct.Struct(">HHHHHH")
_u16 = struct.Struct(">H").unpack_from
_DEVICE_SUFFIXES = frozenset({0x00, 0x20})
_NB, _NBSTAT = 0x0020, 0x0021
_REGISTRATIONS = frozenset({5, 8, 9, 15})  # registration, refresh (8 and 9), multi-homed
_DATAGRAMS = frozenset({0x10, 0x11, 0x12})  # direct unique, direct group, broadcast
_GROUP = 0x8000


def decode_name(data: bytes, offset: int) -> tuple[str, int, int] | None:
    """``(name, suffix, offset after the encoded name)`` of a first-level encoded NetBIOS
    name (32 characters 'A'..'P' then a scope) at ``offset``, or of a label string pointer
    (RFC 1002, e.g. a registration's record naming its question) to an earlier one; None
    when malformed."""
    if offset + 2 <= len(data) and data[offset] & 0xC0 == 0xC0:
        target = _u16(data, offset)[0] & 0x3FFF
        if target >= offset:  # only backwards: no loops
            return None
        pointed = _decode_name(data, target)
        return None if pointed is None else (pointed[0], pointed[1], offset + 2)
    return _decode_name(data, offset)


def _decode_name(data: bytes, offset: int) -> tuple[str, int, int] | None:
    if offset + 34 > len(data) or data[offset] != 32:
        return None
    raw = data[offset + 1 : offset + 33]
    out = bytearray()
    for i in range(0, 32, 2):
        hi, lo = raw[i] - 0x41, raw[i + 1] - 0x41
        if not (0 <= hi < 16 and 0 <= lo < 16):
            return None
        out.append(hi << 4 | lo)
    end = offset + 33
    while end < len(data) and data[end] != 0:  # the scope's labels
        if data[end] & 0xC0:
            return None
        end += data[end] + 1
    if end >= len(data):
        return None
    name = out[:15].decode("latin-1").rstrip(" \x00")
    return name, out[15], end + 1


def _device_name(name: str, suffix: int) -> str | None:
    if suffix not in _DEVICE_SUFFIXES or not name or name.startswith(("*", "\x01")):
        return None
    if not name.isprintable():
        return None
    return name.lower()


def _skip_question(data: bytes, offset: int) -> int | None:
    decoded = decode_name(data, offset)
    return None if decoded is None else decoded[2] + 4


def nbns_names(payload: bytes, src_ip: str | None) -> list[tuple[str, str]]:
    """``(name, IPv4)`` pairs an NBNS message proves: responses' NB and NBSTAT records,
    registrations' additional record."""
    if len(payload) < 12:
        return []
    _txid, flags, qd, an, ns, ar = _H.unpack_from(payload)
    response, opcode = bool(flags & 0x8000), flags >> 11 & 0xF
    if not response and opcode not in _REGISTRATIONS:
        return []
    offset: int | None = 12
    for _ in range(min(qd, 4)):
        offset = _skip_question(payload, offset) if offset is not None else None
    out: list[tuple[str, str]] = []
    for index in range(min(an + ns + ar, 8)):
        if offset is None:
            break
        decoded = decode_name(payload, offset)
        if decoded is None or decoded[2] + 10 > len(payload):
            break
        name, suffix, at = decoded
        rtype = _u16(payload, at)[0]
        length = _u16(payload, at + 8)[0]
        data = payload[at + 10 : at + 10 + length]
        offset = at + 10 + length
        if len(data) < length:
            break
        counted = response or index >= an + ns  # a registration's proof: its additional record
        if counted and rtype == _NB:
            out.extend(_nb_records(name, suffix, data))
        elif response and rtype == _NBSTAT and src_ip is not None:
            out.extend((n, src_ip) for n in _node_status(data))
    return out


def _nb_records(name: str, suffix: int, data: bytes) -> list[tuple[str, str]]:
    device = _device_name(name, suffix)
    out = []
    for i in range(0, min(len(data), 6 * 8) - 5, 6):
        nb_flags = _u16(data, i)[0]
        if device is not None and not nb_flags & _GROUP:
            out.append((device, ".".join(str(b) for b in data[i + 2 : i + 6])))
    return out


def _node_status(data: bytes) -> list[str]:
    """Unique workstation/server names of a node status response's name table."""
    if not data:
        return []
    count, names = data[0], []
    for i in range(min(count, 32)):
        entry = data[1 + 18 * i : 1 + 18 * (i + 1)]
        if len(entry) < 18:
            break
        flags = _u16(entry, 16)[0]
        name = entry[:15].decode("latin-1").rstrip(" \x00")
        device = _device_name(name, entry[15])
        if device is not None and not flags & _GROUP and device not in names:
            names.append(device)
    return names


def nbdgm_source(payload: bytes) -> tuple[str, str] | None:
    """``(name, IPv4)`` of a NetBIOS datagram's source (direct or broadcast datagrams)."""
    if len(payload) < 14 or payload[0] not in _DATAGRAMS:
        return None
    decoded = decode_name(payload, 14)
    if decoded is None:
        return None
    device = _device_name(decoded[0], decoded[1])
    if device is None:
        return None
    return device, ".".join(str(b) for b in payload[4:8])
