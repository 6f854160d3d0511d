# scapy.contrib.description = DNP3 (IEEE 1815) over TCP/UDP
# scapy.contrib.status = loads
"""DNP3 (IEEE Std 1815-2012) link, transport and application layers.

Link layer (clause 9): start octets 0x05 0x64, LENGTH (octets of control, destination,
source and user data: 5 + user data), CONTROL (DIR, PRM, FCB/FCV, function), DESTINATION and
SOURCE (little-endian), a CRC over the 8 header octets, then the user data in blocks of at
most 16 octets, *each followed by its own CRC*. ``DNP3`` strips the block CRCs before
dissecting (recording which ones are wrong in ``crc_errors``) and inserts them on build, so
the transport and application layers see contiguous user data.

Transport (clause 8): one octet, FIN, FIR and a 6-bit sequence number. ``TransportReassembler``
joins the segments of one application fragment (FIR … FIN, consecutive sequence numbers).

Application (clause 4.2.2): APPLICATION CONTROL (FIR, FIN, CON, UNS, SEQ), FUNCTION CODE and,
in responses (129-131), the two internal-indication octets IIN1 and IIN2; object headers
follow (kept as raw bytes; ``dnp3_objects`` reads and checks their headers).
"""

from __future__ import annotations

import struct

from scapy.config import conf
from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    FlagsField,
    LEShortField,
    PacketLenField,
    XLEShortField,
    XShortField,
)
from scapy.layers.inet import TCP, UDP
from scapy.packet import Packet, bind_layers

from otwatch.agent.decode.layers.robust import RobustPacket

__all__ = [
    "APP_FUNCTIONS",
    "DNP3",
    "DNP3_PORT",
    "IIN1_FLAGS",
    "IIN2_FLAGS",
    "LINK_FUNCTIONS",
    "DNP3Application",
    "DNP3ApplicationRequest",
    "DNP3ApplicationResponse",
    "DNP3Transport",
    "LinkFrame",
    "TransportReassembler",
    "crc16",
    "frame_length",
    "frame_size",
    "insert_crcs",
    "parse_frame",
    "resync",
]

DNP3_PORT = 20000
START = b"\x05\x64"
MIN_LENGTH = 5
BLOCK = 16

APP_FUNCTIONS = {
    0: "Confirm",
    1: "Read",
    2: "Write",
    3: "Select",
    4: "Operate",
    5: "Direct Operate",
    6: "Direct Operate No Ack",
    7: "Immediate Freeze",
    8: "Immediate Freeze No Ack",
    9: "Freeze and Clear",
    10: "Freeze and Clear No Ack",
    11: "Freeze at Time",
    12: "Freeze at Time No Ack",
    13: "Cold Restart",
    14: "Warm Restart",
    15: "Initialize Data",
    16: "Initialize Application",
    17: "Start Application",
    18: "Stop Application",
    19: "Save Configuration",
    20: "Enable Unsolicited",
    21: "Disable Unsolicited",
    22: "Assign Class",
    23: "Delay Measurement",
    24: "Record Current Time",
    25: "Open File",
    26: "Close File",
    27: "Delete File",
    28: "Get File Info",
    29: "Authenticate File",
    30: "Abort File",
    31: "Activate Configuration",
    32: "Authentication Request",
    33: "Authentication Request No Ack",
    129: "Response",
    130: "Unsolicited Response",
    131: "Authentication Response",
}

LINK_FUNCTIONS = {
    0: "Reset Link States",
    2: "Test Link States",
    3: "Confirmed User Data",
    4: "Unconfirmed User Data",
    9: "Request Link Status",
}

IIN1_FLAGS = [
    "all_stations",
    "class_1_events",
    "class_2_events",
    "class_3_events",
    "need_time",
    "local_control",
    "device_trouble",
    "device_restart",
]
IIN2_FLAGS = [
    "no_func_code_support",
    "object_unknown",
    "parameter_error",
    "event_buffer_overflow",
    "already_executing",
    "config_corrupt",
    "reserved_2_6",
    "reserved_2_7",
]


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA6BC if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _crc_table()
_le16 = struct.Struct("<H")
_header = struct.Struct("<BBHH")


_crc_memo: dict[bytes, int] = {}
_CRC_MEMO_MAX = 65_536


def crc16(data: bytes) -> int:
    """The DNP3 CRC (polynomial 0x3D65, reflected, complemented).

    Memoised: polling repeats the same headers and, mostly, the same data blocks, and a
    table-driven CRC in Python costs about a microsecond per 16-octet block."""
    if type(data) is not bytes:  # bytearray/memoryview: not hashable
        data = bytes(data)
    crc = _crc_memo.get(data)
    if crc is not None:
        return crc
    crc = 0
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    crc = ~crc & 0xFFFF
    if len(_crc_memo) >= _CRC_MEMO_MAX:
        _crc_memo.clear()
    _crc_memo[data] = crc
    return crc


def frame_size(length: int) -> int:
    """Octets on the wire of a link frame whose LENGTH field is ``length``."""
    user = max(0, length - MIN_LENGTH)
    return 10 + user + 2 * ((user + BLOCK - 1) // BLOCK)


def frame_length(buf: bytes, off: int) -> int | None:
    """Reassembly framing: the size of the frame at ``off``, None if unknown yet, 0 if none.

    A frame whose LENGTH is below the minimum is returned as its 10-octet header so the
    caller can report it; its bytes are not trusted further.
    """
    if len(buf) - off < 3:
        if buf[off] != 0x05 or (len(buf) - off == 2 and buf[off + 1] != 0x64):
            return 0
        return None
    if buf[off] != 0x05 or buf[off + 1] != 0x64:
        return 0
    length = buf[off + 2]
    return 10 if length < MIN_LENGTH else frame_size(length)


def resync(buf: bytes, off: int) -> int:
    return buf.find(START, off)


def insert_crcs(user: bytes) -> bytes:
    """User data as sent: each block of up to 16 octets followed by its CRC."""
    out = []
    for i in range(0, len(user), BLOCK):
        block = user[i : i + BLOCK]
        out.append(block + _le16.pack(crc16(block)))
    return b"".join(out)


def _strip_crcs(data: bytes, user_len: int) -> tuple[bytes, list[int]]:
    """(user data, indexes of blocks whose CRC is wrong or missing)."""
    blocks, bad = [], []
    pos, index = 0, 0
    while user_len > 0:
        n = min(BLOCK, user_len)
        block = data[pos : pos + n]
        crc = data[pos + n : pos + n + 2]
        if len(block) < n or len(crc) < 2 or _le16.unpack(crc)[0] != crc16(block):
            bad.append(index)
        blocks.append(block)
        pos += n + 2
        user_len -= n
        index += 1
    return b"".join(blocks), bad


class LinkFrame:
    """A link frame read with ``parse_frame`` (the engines' struct path)."""

    __slots__ = ("control", "destination", "source", "user_data")

    def __init__(self, control: int, destination: int, source: int, user_data: bytes) -> None:
        self.control, self.destination, self.source = control, destination, source
        self.user_data = user_data

    @property
    def from_master(self) -> bool:
        return bool(self.control & 0x80)

    @property
    def primary(self) -> bool:
        return bool(self.control & 0x40)

    @property
    def function(self) -> int:
        return self.control & 0x0F

    @property
    def carries_user_data(self) -> bool:
        return self.primary and self.function in (3, 4) and bool(self.user_data)


def parse_frame(frame: bytes) -> LinkFrame | str:
    """Check and decode one link frame; returns a short reason when it is malformed."""
    if len(frame) < 10 or frame[:2] != START:
        return "truncated link header"
    length, control, destination, source = _header.unpack_from(frame, 2)
    if length < MIN_LENGTH:
        return f"link LENGTH {length} below the minimum of {MIN_LENGTH}"
    if _le16.unpack_from(frame, 8)[0] != crc16(frame[:8]):
        return "bad link header CRC"
    user_len = length - MIN_LENGTH
    if len(frame) < frame_size(length):
        return f"frame shorter than its LENGTH {length}"
    user, bad = _strip_crcs(frame[10:], user_len)
    if bad:
        return f"bad CRC in user data block {bad[0] + 1}"
    return LinkFrame(control, destination, source, user)


class TransportReassembler:
    """Joins transport segments (FIR … FIN) into application fragments, bounded in size."""

    __slots__ = ("_buf", "_seq", "dropped", "max_fragment")

    def __init__(self, max_fragment: int = 8192) -> None:
        self.max_fragment = max_fragment
        self._buf: bytearray | None = None
        self._seq = 0
        self.dropped = 0

    def feed(self, segment: bytes) -> bytes | None:
        """Add one transport segment; returns the application fragment when it completes."""
        if not segment:
            return None
        header, body = segment[0], segment[1:]
        fin, fir, seq = header & 0x80, header & 0x40, header & 0x3F
        if fir:
            if self._buf is not None:
                self.dropped += 1
            if fin:
                self._buf = None
                return body
            self._buf = bytearray(body)
        elif self._buf is None or seq != (self._seq + 1) & 0x3F:
            self._buf = None  # no FIR seen (mid-stream) or a segment was lost
            self.dropped += 1
            return None
        else:
            self._buf += body
        self._seq = seq
        if len(self._buf) > self.max_fragment:
            self._buf = None
            self.dropped += 1
            return None
        if fin:
            out, self._buf = bytes(self._buf), None
            return out
        return None


# -- Scapy layers ---------------------------------------------------------------------------


class DNP3Application(RobustPacket):
    """Dispatches to the request or response header by function code."""

    name = "DNP3 Application"

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args, **kargs):
        if _pkt and len(_pkt) >= 2 and _pkt[1] in (129, 130, 131):
            return DNP3ApplicationResponse
        return DNP3ApplicationRequest


_APP_CONTROL = [
    BitField("fir", 1, 1),
    BitField("fin", 1, 1),
    BitField("con", 0, 1),
    BitField("uns", 0, 1),
    BitField("seq", 0, 4),
]


class DNP3ApplicationRequest(DNP3Application):
    name = "DNP3 Application Request"
    fields_desc = [*_APP_CONTROL, ByteEnumField("function", 1, APP_FUNCTIONS)]


class DNP3ApplicationResponse(DNP3Application):
    name = "DNP3 Application Response"
    fields_desc = [
        *_APP_CONTROL,
        ByteEnumField("function", 129, APP_FUNCTIONS),
        FlagsField("iin1", 0, 8, IIN1_FLAGS),
        FlagsField("iin2", 0, 8, IIN2_FLAGS),
    ]


class DNP3Transport(RobustPacket):
    name = "DNP3 Transport"
    fields_desc = [BitField("fin", 1, 1), BitField("fir", 1, 1), BitField("seq", 0, 6)]

    def guess_payload_class(self, payload: bytes):
        return DNP3Application if self.fir else conf.raw_layer


def _user_len(pkt: Packet) -> int:
    return max(0, (pkt.length or 0) - MIN_LENGTH)


class DNP3(RobustPacket):
    """One DNP3 link frame; several frames in one TCP segment chain as payloads."""

    name = "DNP3 Link"
    __slots__ = ["_wire", "crc_errors"]
    fields_desc = [
        XShortField("start", 0x0564),
        ByteField("length", None),
        BitEnumField("dir", 1, 1, {0: "from outstation", 1: "from master"}),
        BitEnumField("prm", 1, 1, {0: "secondary", 1: "primary"}),
        BitField("fcb", 0, 1),
        BitField("fcv", 0, 1),
        BitEnumField("function", 4, 4, LINK_FUNCTIONS),
        LEShortField("destination", 1),
        LEShortField("source", 1024),
        XLEShortField("crc", None),
        # scapy's stubs type the default as a Packet; None (no payload packet) is what it takes
        PacketLenField("user_data", None, DNP3Transport, length_from=_user_len),  # type: ignore[arg-type]
    ]

    def __init__(self, *args, **kwargs) -> None:
        self.crc_errors: list[str] = []
        self._wire: bytes | None = None
        super().__init__(*args, **kwargs)

    def pre_dissect(self, s: bytes) -> bytes:
        """Strip the block CRCs of this frame, noting wrong ones; later frames are untouched."""
        if len(s) < 10 or s[2] < MIN_LENGTH:
            return s
        size = frame_size(s[2])
        if _le16.unpack_from(s, 8)[0] != crc16(s[:8]):
            self.crc_errors.append("header")
        user, bad = _strip_crcs(s[10:size], s[2] - MIN_LENGTH)
        self.crc_errors.extend(f"block {i + 1}" for i in bad)
        self._wire = s[:size]
        return s[:10] + user + s[size:]

    def post_dissect(self, s: bytes) -> bytes:
        if self._wire is not None:
            self.raw_packet_cache = self._wire  # rebuild gives the bytes as captured
        return s

    def do_build_payload(self) -> bytes:
        if self.user_data is None and isinstance(self.payload, DNP3Transport):
            return b""  # ``DNP3()/DNP3Transport()/...``: the payload is built as user data
        return super().do_build_payload()

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        user = p[10:]
        if self.user_data is None and isinstance(self.payload, DNP3Transport):
            user = bytes(self.payload)
        if self.length is None:
            p = p[:2] + bytes([MIN_LENGTH + len(user)]) + p[3:]
        if self.crc is None:
            p = p[:8] + _le16.pack(crc16(p[:8])) + p[10:]
        return p[:10] + insert_crcs(user) + pay

    def guess_payload_class(self, payload: bytes):
        return DNP3 if payload[:2] == START else conf.raw_layer


bind_layers(TCP, DNP3, dport=DNP3_PORT)
bind_layers(TCP, DNP3, sport=DNP3_PORT)
bind_layers(UDP, DNP3, dport=DNP3_PORT)
bind_layers(UDP, DNP3, sport=DNP3_PORT)
