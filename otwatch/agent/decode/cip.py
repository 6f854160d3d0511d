"""EtherNet/IP encapsulation and CIP messages, parsed with ``struct``.

Why not Scapy here: Scapy 2.8 has no CIP layer, and its ``scapy.contrib.enipTCP`` misreads
the corpus (it decodes common-packet-format item data as a little-endian integer, so the
CIP bytes come out reversed, and reads the ListIdentity item count big-endian: 256 for 1).
EtherNet/IP traffic is also high-rate (tag polling, firmware transfers), so the engine needs
the cheap path anyway. Tests cross-check this parser against the corpus and tshark's counts.

References: ODVA CIP Vol. 2 (EtherNet/IP) ch. 2 encapsulation and common packet format; CIP
Vol. 1 ch. 2-3 (message router request/response, EPATH segments), ch. 5 (Identity object).
Nothing here raises on malformed input: functions return None (or stop early) instead.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "CIP_CLASSES",
    "CIP_SERVICES",
    "ENIP_COMMANDS",
    "ENIP_STATUS",
    "CipRequest",
    "CipResponse",
    "EnipHeader",
    "Identity",
    "cip_message",
    "class_name",
    "embedded_requests",
    "embedded_responses",
    "forward_open_connection",
    "frame_length",
    "identity_from_attributes",
    "list_identity",
    "parse_enip",
    "parse_path",
    "parse_request",
    "parse_response",
    "pccc_command",
    "resync",
    "service_name",
]

ENIP_HEADER = 24
ENIP_COMMANDS = {
    0x0000: "NOP",
    0x0001: "legacy command 0x0001",
    0x0004: "ListServices",
    0x0063: "ListIdentity",
    0x0064: "ListInterfaces",
    0x0065: "RegisterSession",
    0x0066: "UnRegisterSession",
    0x006F: "SendRRData",
    0x0070: "SendUnitData",
    0x0072: "IndicateStatus",
    0x0073: "Cancel",
}
ENIP_STATUS = {
    0x0001: "invalid or unsupported command",
    0x0002: "insufficient memory",
    0x0003: "incorrect data",
    0x0064: "invalid session handle",
    0x0065: "invalid length",
    0x0069: "unsupported protocol revision",
}
CIP_SERVICES = {
    0x01: "Get_Attributes_All",
    0x02: "Set_Attributes_All",
    0x03: "Get_Attribute_List",
    0x04: "Set_Attribute_List",
    0x05: "Reset",
    0x06: "Start",
    0x07: "Stop",
    0x08: "Create",
    0x09: "Delete",
    0x0A: "Multiple_Service_Packet",
    0x0D: "Apply_Attributes",
    0x0E: "Get_Attribute_Single",
    0x10: "Set_Attribute_Single",
    0x11: "Find_Next_Object_Instance",
    0x15: "Restore",
    0x16: "Save",
    0x17: "No_Operation",
    0x18: "Get_Member",
    0x19: "Set_Member",
    0x1A: "Insert_Member",
    0x1B: "Remove_Member",
    0x1C: "Group_Sync",
}
#: Class-specific services the engines name (class, service) → name.
CLASS_SERVICES = {
    (0x06, 0x4E): "Forward_Close",
    (0x06, 0x52): "Unconnected_Send",
    (0x06, 0x54): "Forward_Open",
    (0x06, 0x5B): "Large_Forward_Open",
    (0x67, 0x4B): "Execute_PCCC",
}
#: Logix symbolic services (addressed by a tag name rather than a class).
SYMBOL_SERVICES = {
    0x4C: "Read_Tag",
    0x4D: "Write_Tag",
    0x4E: "Read_Modify_Write_Tag",
    0x52: "Read_Tag_Fragmented",
    0x53: "Write_Tag_Fragmented",
}
CIP_CLASSES = {
    0x01: "Identity",
    0x02: "Message Router",
    0x04: "Assembly",
    0x05: "Connection",
    0x06: "Connection Manager",
    0x37: "File",
    0x48: "QoS",
    0x67: "PCCC",
    0xF4: "Port",
    0xF5: "TCP/IP Interface",
    0xF6: "Ethernet Link",
}
CIP_STATUS = {
    0x01: "connection failure",
    0x02: "resource unavailable",
    0x03: "invalid parameter value",
    0x04: "path segment error",
    0x05: "path destination unknown",
    0x06: "partial transfer",
    0x08: "service not supported",
    0x09: "invalid attribute value",
    0x0C: "object state conflict",
    0x0E: "attribute not settable",
    0x0F: "privilege violation",
    0x10: "device state conflict",
    0x13: "not enough data",
    0x14: "attribute not supported",
    0x15: "too much data",
    0x16: "object does not exist",
    0x1E: "embedded service error",
    0x20: "invalid parameter",
}

_header = struct.Struct("<HHII8sI")
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_identity = struct.Struct("<HHHBBHI")


@dataclass(slots=True)
class EnipHeader:
    command: int
    length: int
    session: int
    status: int
    context: bytes
    body: bytes


@dataclass(slots=True)
class CipRequest:
    service: int
    cls: int | None
    instance: int | None
    attribute: int | None
    symbol: str | None
    data: bytes
    connection_point: int | None = None

    @property
    def name(self) -> str:
        return service_name(self.service, self.cls, self.symbol)


@dataclass(slots=True)
class CipResponse:
    service: int
    """The request's service code (the reply bit 0x80 removed)."""
    status: int
    extended_status: tuple[int, ...]
    data: bytes


@dataclass(slots=True)
class Identity:
    vendor: int
    device_type: int
    product_code: int
    major: int
    minor: int
    serial: int
    product_name: str

    @property
    def revision(self) -> str:
        return f"{self.major}.{self.minor:03d}"


def service_name(service: int, cls: int | None = None, symbol: str | None = None) -> str:
    name = CIP_SERVICES.get(service) or CLASS_SERVICES.get((cls or 0, service))
    if name is None and symbol is not None:
        name = SYMBOL_SERVICES.get(service)
    return name or f"service 0x{service:02X}"


def class_name(cls: int | None) -> str:
    if cls is None:
        return "no class"
    known = CIP_CLASSES.get(cls)
    return f"class 0x{cls:02X} ({known})" if known else f"class 0x{cls:02X}"


# -- encapsulation ---------------------------------------------------------------------------


def frame_length(buf: bytes, off: int) -> int | None:
    """Reassembly framing: encapsulation header + its LENGTH, None if unknown yet, 0 if the
    command is not one EtherNet/IP defines."""
    if len(buf) - off < 4:
        return None
    command = _u16(buf, off)[0]
    if command not in ENIP_COMMANDS:
        return 0
    return ENIP_HEADER + _u16(buf, off + 2)[0]


def resync(buf: bytes, off: int) -> int:
    """EtherNet/IP has no start marker: skip the rest of the segment."""
    return -1


def parse_enip(frame: bytes) -> EnipHeader | None:
    if len(frame) < ENIP_HEADER:
        return None
    command, length, session, status, context, _options = _header.unpack_from(frame)
    body = frame[ENIP_HEADER : ENIP_HEADER + length]
    if len(body) < length:
        return None
    return EnipHeader(command, length, session, status, context, body)


def cip_message(command: int, body: bytes) -> tuple[bytes, int | None] | None:
    """The CIP message of a SendRRData/SendUnitData body and, for connected data, its
    sequence count."""
    if command not in (0x006F, 0x0070) or len(body) < 8:
        return None
    count = _u16(body, 6)[0]
    pos = 8
    for _ in range(min(count, 8)):
        if pos + 4 > len(body):
            return None
        item_type, item_len = _u16(body, pos)[0], _u16(body, pos + 2)[0]
        data = body[pos + 4 : pos + 4 + item_len]
        pos += 4 + item_len
        if item_type == 0x00B2 and data:
            return data, None
        if item_type == 0x00B1 and len(data) >= 2:
            return data[2:], _u16(data, 0)[0]
    return None


def list_identity(body: bytes) -> Identity | None:
    """The identity item of a ListIdentity reply."""
    if len(body) < 2 or _u16(body, 0)[0] < 1 or len(body) < 6:
        return None
    item_type, item_len = _u16(body, 2)[0], _u16(body, 4)[0]
    item = body[6 : 6 + item_len]
    if item_type != 0x000C or len(item) < 18:
        return None
    return identity_from_attributes(item[18:])


def identity_from_attributes(data: bytes) -> Identity | None:
    """Identity object instance attributes 1-7 (Get_Attributes_All reply, ListIdentity)."""
    if len(data) < _identity.size + 1:
        return None
    vendor, device_type, product, major, minor, _status, serial = _identity.unpack_from(data)
    n = data[_identity.size]
    name = data[_identity.size + 1 : _identity.size + 1 + n].decode("latin-1", "replace")
    return Identity(vendor, device_type, product, major, minor, serial, name)


# -- CIP messages ----------------------------------------------------------------------------


def parse_path(path: bytes) -> tuple[int | None, int | None, int | None, str | None, int | None]:
    """``(class, instance, attribute, symbol, connection point)`` of an EPATH."""
    cls = instance = attribute = point = None
    symbol: str | None = None
    pos, size = 0, len(path)
    while pos < size:
        seg = path[pos]
        if seg == 0x34:  # electronic key (logical type "special")
            pos += 10
        elif 0x20 <= seg <= 0x3F:  # logical segment: type in bits 4-2, format in bits 1-0
            fmt = seg & 0x03
            if fmt == 0 and pos + 2 <= size:
                value, pos = path[pos + 1], pos + 2
            elif fmt == 1 and pos + 4 <= size:
                value, pos = _u16(path, pos + 2)[0], pos + 4
            elif fmt == 2 and pos + 6 <= size:
                value, pos = _u32(path, pos + 2)[0], pos + 6
            else:
                break
            kind = seg & 0xFC
            if kind == 0x20:
                cls = value
            elif kind == 0x24:
                instance = value
            elif kind == 0x2C:
                point = value
            elif kind == 0x30:
                attribute = value
        elif seg == 0x91:  # ANSI extended symbol (data segment)
            if pos + 2 > size:
                break
            n = path[pos + 1]
            text = path[pos + 2 : pos + 2 + n].decode("latin-1", "replace")
            symbol = text if symbol is None else f"{symbol}.{text}"
            pos += 2 + n + (n & 1)
        elif seg < 0x20:  # port segment, with an extended link address when bit 4 is set
            if seg & 0x10:
                if pos + 2 > size:
                    break
                n = path[pos + 1]
                pos += 2 + n + (n & 1)
            else:
                pos += 2
        else:
            break
    return cls, instance, attribute, symbol, point


def parse_request(msg: bytes) -> CipRequest | None:
    if len(msg) < 2 or msg[0] & 0x80:
        return None
    words = msg[1]
    end = 2 + 2 * words
    if end > len(msg):
        return None
    cls, instance, attribute, symbol, point = parse_path(msg[2:end])
    return CipRequest(msg[0], cls, instance, attribute, symbol, msg[end:], point)


def parse_response(msg: bytes) -> CipResponse | None:
    if len(msg) < 4 or not msg[0] & 0x80:
        return None
    ext_words = msg[3]
    end = 4 + 2 * ext_words
    if end > len(msg):
        return None
    ext = tuple(_u16(msg, 4 + 2 * i)[0] for i in range(ext_words))
    return CipResponse(msg[0] & 0x7F, msg[2], ext, msg[end:])


def _offsets(data: bytes) -> list[bytes]:
    if len(data) < 2:
        return []
    count = min(_u16(data, 0)[0], 64)
    if len(data) < 2 + 2 * count:
        return []
    offsets = [_u16(data, 2 + 2 * i)[0] for i in range(count)]
    out = []
    for i, start in enumerate(offsets):
        end = offsets[i + 1] if i + 1 < count else len(data)
        if start < 2 + 2 * count or end > len(data) or end < start:
            break
        out.append(data[start:end])
    return out


def embedded_requests(req: CipRequest) -> list[CipRequest]:
    """The requests inside a Multiple_Service_Packet or an Unconnected_Send (one level)."""
    if req.service == 0x0A and req.cls == 0x02:
        parsed = (parse_request(m) for m in _offsets(req.data))
        return [r for r in parsed if r is not None]
    if req.service == 0x52 and req.cls == 0x06 and len(req.data) >= 4:
        size = _u16(req.data, 2)[0]
        inner = parse_request(req.data[4 : 4 + size])
        return [inner] if inner is not None else []
    return []


def embedded_responses(resp: CipResponse) -> list[CipResponse]:
    """The replies inside a Multiple_Service_Packet reply."""
    if resp.service != 0x0A:
        return []
    parsed = (parse_response(m) for m in _offsets(resp.data))
    return [r for r in parsed if r is not None]


def forward_open_connection(req: CipRequest) -> tuple[int, bytes] | None:
    """``(transport class, connection path)`` of a (Large_)Forward_Open request."""
    data = req.data
    large = req.service == 0x5B  # 32-bit network connection parameters
    fixed = 39 if large else 35  # offset of the connection path size (after the transport)
    if len(data) < fixed + 1:
        return None
    transport = data[fixed - 1] & 0x0F
    words = data[fixed]
    return transport, data[fixed + 1 : fixed + 1 + 2 * words]


def pccc_command(data: bytes) -> tuple[int, int | None] | None:
    """``(CMD, FNC)`` of an Execute_PCCC request (after the requestor id)."""
    if not data:
        return None
    pos = data[0]  # requestor id length, itself included
    if pos < 1 or len(data) < pos + 1:
        return None
    cmd = data[pos]
    fnc = data[pos + 4] if len(data) > pos + 4 else None
    return cmd, fnc
