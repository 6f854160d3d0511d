# scapy.contrib.description = BACnet/IP (ANSI/ASHRAE 135) BVLC, NPDU and APDU
# scapy.contrib.status = loads
"""BACnet/IP: BVLC (Annex J), NPDU (clause 6) and APDU (clause 20), UDP port 47808.

- ``BVLC``: type 0x81, function, LENGTH of the whole BVLL message (bounds the NPDU); a
  Forwarded-NPDU carries the original B/IP address first.
- ``NPDU``: version 1, control (network-layer message, DNET/SNET present, expecting reply,
  priority), optional destination/source specifiers and hop count, and for network-layer
  messages the message type (and vendor id for proprietary types).
- ``APDU``: dispatched on the PDU type (high nibble of the first octet) to confirmed request,
  unconfirmed request, simple/complex ACK, segment ACK, error, reject or abort; reserved types
  8-15 become ``BACnetAPDUReserved``. The service parameters stay raw, except for the two
  services the engine inspects deeply: ReinitializeDevice and DeviceCommunicationControl.

``parse_tag`` and friends read the tagged encoding (clause 20.2) for the engine's struct path.
"""

from __future__ import annotations

import struct

from scapy.config import conf
from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldLenField,
    IPField,
    MayEnd,
    ShortField,
    StrField,
    StrLenField,
    XByteField,
)
from scapy.layers.inet import UDP
from scapy.packet import Packet, bind_layers

from otwatch.agent.decode.layers.bacnet_codes import (
    ABORT_REASONS,
    BVLC_FUNCTIONS,
    CONFIRMED_SERVICES,
    ERROR_CLASSES,
    ERROR_CODES,
    NETWORK_MESSAGES,
    NPDU_FUNCTIONS,
    OBJECT_TYPES,
    PDU_TYPES,
    REINITIALIZED_STATES,
    REJECT_REASONS,
    UNCONFIRMED_SERVICES,
)
from otwatch.agent.decode.layers.robust import RobustPacket

__all__ = [
    "ABORT_REASONS",
    "BACNET_PORT",
    "BVLC",
    "BVLC_FUNCTIONS",
    "CONFIRMED_SERVICES",
    "ERROR_CLASSES",
    "ERROR_CODES",
    "NETWORK_MESSAGES",
    "NPDU",
    "OBJECT_TYPES",
    "PDU_TYPES",
    "REINITIALIZED_STATES",
    "REJECT_REASONS",
    "UNCONFIRMED_SERVICES",
    "BACnetAPDU",
    "BACnetAPDUReserved",
    "BACnetAbort",
    "BACnetComplexACK",
    "BACnetConfirmedRequest",
    "BACnetError",
    "BACnetReject",
    "BACnetSegmentACK",
    "BACnetSimpleACK",
    "BACnetUnconfirmedRequest",
    "DeviceCommunicationControlRequest",
    "ReinitializeDeviceRequest",
    "context_unsigned",
    "encode_password",
    "error_class_code",
    "object_identifier",
    "parse_tag",
]

BACNET_PORT = 47808

# -- tagged encoding (clause 20.2.1) ---------------------------------------------------------

_uint = {1: struct.Struct(">B"), 2: struct.Struct(">H"), 4: struct.Struct(">I")}


def parse_tag(data: bytes, pos: int) -> tuple[int, bool, int, int] | None:
    """``(tag number, context-specific, length/value, header octets)`` at ``pos``, or None.

    For opening/closing tags (LVT 6/7 with the context bit) the length is 0.
    """
    size = len(data)
    if pos >= size:
        return None
    octet = data[pos]
    number, context, lvt = octet >> 4, bool(octet & 0x08), octet & 0x07
    header = 1
    if number == 15:
        if pos + 1 >= size:
            return None
        number = data[pos + 1]
        header = 2
    if context and lvt in (6, 7):
        return number, context, 0, header
    if not context and number == 1:  # application boolean: the value is in LVT
        return number, context, 0, header
    if lvt == 5:
        if pos + header >= size:
            return None
        ext = data[pos + header]
        header += 1
        if ext == 254:
            if pos + header + 2 > size:
                return None
            lvt, header = _uint[2].unpack_from(data, pos + header)[0], header + 2
        elif ext == 255:
            if pos + header + 4 > size:
                return None
            lvt, header = _uint[4].unpack_from(data, pos + header)[0], header + 4
        else:
            lvt = ext
    if pos + header + lvt > size:
        return None
    return number, context, lvt, header


def _unsigned(data: bytes, pos: int, length: int) -> int:
    return int.from_bytes(data[pos : pos + length], "big")


def context_unsigned(data: bytes, tag: int, pos: int = 0) -> int | None:
    """The value of the first context tag ``tag`` at the top level of ``data``, or None."""
    depth = 0
    while True:
        parsed = parse_tag(data, pos)
        if parsed is None:
            return None
        number, context, length, header = parsed
        octet = data[pos]
        if context and octet & 0x07 == 6:
            depth += 1
        elif context and octet & 0x07 == 7:
            depth -= 1
        elif depth == 0 and context and number == tag:
            return _unsigned(data, pos + header, length)
        pos += header + length


def object_identifier(value: int) -> tuple[int, int]:
    """``(object type, instance)`` of an encoded BACnetObjectIdentifier."""
    return value >> 22, value & 0x3FFFFF


def error_class_code(data: bytes) -> tuple[int, int] | None:
    """The error class and code (two application-tagged enumerations) of an Error PDU's
    service part, or None."""
    values: list[int] = []
    pos = 0
    while len(values) < 2:
        parsed = parse_tag(data, pos)
        if parsed is None:
            return None
        number, context, length, header = parsed
        if number == 14 and context:  # ConfirmedPrivateTransfer-Error etc.: opening tag [0]
            pos += header
            continue
        if context or number != 9:
            return None
        values.append(_unsigned(data, pos + header, length))
        pos += header + length
    return values[0], values[1]


# -- Scapy layers ----------------------------------------------------------------------------


class ReinitializeDeviceRequest(RobustPacket):
    """ReinitializeDevice-Request (clause 16.4): [0] reinitialized state, optional [1]
    password (kept as its tagged encoding; ``password`` decodes it)."""

    name = "BACnet ReinitializeDevice-Request"
    fields_desc = [
        XByteField("state_tag", 0x09),
        MayEnd(ByteEnumField("reinitialized_state", 0, REINITIALIZED_STATES)),
        StrField("password_part", b""),
    ]

    @property
    def password(self) -> bytes | None:
        """The password's characters (after the character-set octet), or None if absent."""
        part = self.password_part or b""
        parsed = parse_tag(part, 0)
        if parsed is None or not parsed[1] or parsed[0] != 1:
            return None
        _number, _context, length, header = parsed
        return part[header + 1 : header + length]


def encode_password(password: bytes) -> bytes:
    """Context tag [1] CharacterString (ANSI X3.4) for a request's password parameter."""
    value = b"\x00" + password
    if len(value) < 5:
        return bytes([0x18 | len(value)]) + value
    return bytes([0x1D, len(value)]) + value


class DeviceCommunicationControlRequest(RobustPacket):
    """DeviceCommunicationControl-Request (clause 16.1): optional [0] time duration,
    [1] enable-disable (0 enable, 1 disable, 2 disable-initiation), optional [2] password."""

    name = "BACnet DeviceCommunicationControl-Request"
    fields_desc = [StrField("parameters", b"\x19\x00")]

    @property
    def enable_disable(self) -> int | None:
        return context_unsigned(self.parameters, 1)

    @property
    def duration_minutes(self) -> int | None:
        return context_unsigned(self.parameters, 0)


_REQUEST_PARAMETERS: dict[int, type[Packet]] = {
    20: ReinitializeDeviceRequest,
    17: DeviceCommunicationControlRequest,
}


class BACnetAPDU(RobustPacket):
    """Dispatches on the PDU type in the high nibble of the first octet."""

    name = "BACnet APDU"

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args, **kargs):
        if not _pkt:
            return cls if cls is not BACnetAPDU else BACnetConfirmedRequest
        return _APDU_CLASSES.get(_pkt[0] >> 4, BACnetAPDUReserved)


class BACnetConfirmedRequest(BACnetAPDU):
    name = "BACnet Confirmed-Request"
    fields_desc = [
        BitEnumField("pdu_type", 0, 4, PDU_TYPES),
        BitField("segmented", 0, 1),
        BitField("more_follows", 0, 1),
        BitField("segmented_response_accepted", 0, 1),
        BitField("reserved", 0, 1),
        BitField("reserved2", 0, 1),
        BitField("max_segments", 0, 3),
        BitField("max_apdu", 5, 4),
        ByteField("invoke_id", 0),
        ConditionalField(ByteField("sequence_number", 0), lambda p: p.segmented),
        ConditionalField(ByteField("proposed_window_size", 1), lambda p: p.segmented),
        ByteEnumField("service_choice", 12, CONFIRMED_SERVICES),
    ]

    def guess_payload_class(self, payload: bytes):
        if self.segmented:
            return conf.raw_layer
        return _REQUEST_PARAMETERS.get(self.service_choice, conf.raw_layer)


class BACnetUnconfirmedRequest(BACnetAPDU):
    name = "BACnet Unconfirmed-Request"
    fields_desc = [
        BitEnumField("pdu_type", 1, 4, PDU_TYPES),
        BitField("reserved", 0, 4),
        ByteEnumField("service_choice", 8, UNCONFIRMED_SERVICES),
    ]


class BACnetSimpleACK(BACnetAPDU):
    name = "BACnet SimpleACK"
    fields_desc = [
        BitEnumField("pdu_type", 2, 4, PDU_TYPES),
        BitField("reserved", 0, 4),
        ByteField("invoke_id", 0),
        ByteEnumField("service_choice", 15, CONFIRMED_SERVICES),
    ]


class BACnetComplexACK(BACnetAPDU):
    name = "BACnet ComplexACK"
    fields_desc = [
        BitEnumField("pdu_type", 3, 4, PDU_TYPES),
        BitField("segmented", 0, 1),
        BitField("more_follows", 0, 1),
        BitField("reserved", 0, 2),
        ByteField("invoke_id", 0),
        ConditionalField(ByteField("sequence_number", 0), lambda p: p.segmented),
        ConditionalField(ByteField("proposed_window_size", 1), lambda p: p.segmented),
        ByteEnumField("service_choice", 12, CONFIRMED_SERVICES),
    ]


class BACnetSegmentACK(BACnetAPDU):
    name = "BACnet SegmentACK"
    fields_desc = [
        BitEnumField("pdu_type", 4, 4, PDU_TYPES),
        BitField("reserved", 0, 2),
        BitField("negative_ack", 0, 1),
        BitField("server", 0, 1),
        ByteField("invoke_id", 0),
        ByteField("sequence_number", 0),
        ByteField("actual_window_size", 1),
    ]


class BACnetError(BACnetAPDU):
    """Error PDU; the error class and code follow as raw tagged data (``error_class_code``)."""

    name = "BACnet Error"
    fields_desc = [
        BitEnumField("pdu_type", 5, 4, PDU_TYPES),
        BitField("reserved", 0, 4),
        ByteField("invoke_id", 0),
        ByteEnumField("service_choice", 12, CONFIRMED_SERVICES),
    ]


class BACnetReject(BACnetAPDU):
    name = "BACnet Reject"
    fields_desc = [
        BitEnumField("pdu_type", 6, 4, PDU_TYPES),
        BitField("reserved", 0, 4),
        ByteField("invoke_id", 0),
        ByteEnumField("reject_reason", 0, REJECT_REASONS),
    ]


class BACnetAbort(BACnetAPDU):
    name = "BACnet Abort"
    fields_desc = [
        BitEnumField("pdu_type", 7, 4, PDU_TYPES),
        BitField("reserved", 0, 3),
        BitField("server", 0, 1),
        ByteField("invoke_id", 0),
        ByteEnumField("abort_reason", 0, ABORT_REASONS),
    ]


class BACnetAPDUReserved(BACnetAPDU):
    """PDU types 8-15 are reserved (an illegal message)."""

    name = "BACnet reserved APDU"
    fields_desc = [BitField("pdu_type", 8, 4), BitField("reserved", 0, 4)]


_APDU_CLASSES: dict[int, type[Packet]] = {
    0: BACnetConfirmedRequest,
    1: BACnetUnconfirmedRequest,
    2: BACnetSimpleACK,
    3: BACnetComplexACK,
    4: BACnetSegmentACK,
    5: BACnetError,
    6: BACnetReject,
    7: BACnetAbort,
}


class NPDU(RobustPacket):
    name = "BACnet NPDU"
    fields_desc = [
        ByteField("version", 1),
        BitField("network_message", 0, 1),
        BitField("reserved1", 0, 1),
        BitField("dnet_present", 0, 1),
        BitField("reserved2", 0, 1),
        BitField("snet_present", 0, 1),
        BitField("expecting_reply", 0, 1),
        BitEnumField("priority", 0, 2, {0: "normal", 1: "urgent", 2: "critical", 3: "life"}),
        ConditionalField(ShortField("dnet", 0), lambda p: p.dnet_present),
        ConditionalField(
            FieldLenField("dlen", None, length_of="dadr", fmt="B"), lambda p: p.dnet_present
        ),
        ConditionalField(
            StrLenField("dadr", b"", length_from=lambda p: p.dlen), lambda p: p.dnet_present
        ),
        ConditionalField(ShortField("snet", 0), lambda p: p.snet_present),
        ConditionalField(
            FieldLenField("slen", None, length_of="sadr", fmt="B"), lambda p: p.snet_present
        ),
        ConditionalField(
            StrLenField("sadr", b"", length_from=lambda p: p.slen), lambda p: p.snet_present
        ),
        ConditionalField(ByteField("hop_count", 255), lambda p: p.dnet_present),
        ConditionalField(
            ByteEnumField("message_type", 0, NETWORK_MESSAGES), lambda p: p.network_message
        ),
        ConditionalField(
            ShortField("vendor_id", 0),
            lambda p: p.network_message and (p.message_type or 0) >= 0x80,
        ),
    ]

    def guess_payload_class(self, payload: bytes):
        return conf.raw_layer if self.network_message else BACnetAPDU


class BVLC(RobustPacket):
    name = "BACnet Virtual Link Control"
    fields_desc = [
        XByteField("type", 0x81),
        ByteEnumField("function", 0x0A, BVLC_FUNCTIONS),
        ShortField("length", None),
        ConditionalField(IPField("original_address", "0.0.0.0"), lambda p: p.function == 0x04),
        ConditionalField(ShortField("original_port", BACNET_PORT), lambda p: p.function == 0x04),
    ]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.length is None:
            p = p[:2] + (len(p) + len(pay)).to_bytes(2, "big") + p[4:]
        return p + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        header = 10 if self.function == 0x04 else 4
        if self.length is None or self.length < header:
            return s, b""
        body = self.length - header
        return s[:body], s[body:]

    def guess_payload_class(self, payload: bytes):
        return NPDU if self.function in NPDU_FUNCTIONS else conf.raw_layer


bind_layers(UDP, BVLC, dport=BACNET_PORT)
bind_layers(UDP, BVLC, sport=BACNET_PORT)
