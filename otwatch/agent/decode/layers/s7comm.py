# scapy.contrib.description = Siemens S7comm over ISO-on-TCP (TPKT/COTP)
# scapy.contrib.status = loads
"""S7comm (protocol id 0x32) over COTP (ISO 8073) over TPKT (RFC 1006), TCP port 102.

- ``TPKT``: version 3, reserved, LENGTH of the whole TPKT packet. Several TPKT packets in one
  segment chain as payloads.
- ``COTP``: LI (header length after itself), PDU type; a DT (data) TPDU carries EOT and the
  TPDU number and then the S7 PDU. Other TPDUs (CR/CC/DR...) keep their variable part raw.
- ``S7``: protocol id, ROSCTR (1 job, 2 ack, 3 ack_data, 7 userdata), redundancy id, PDU
  reference, parameter and data lengths (+ error class and code in acks), then the parameter
  (dissected by ROSCTR and function) and the data (raw).

Parameters dissected: setup communication (0xF0), read/write var (0x04/0x05) items, the block
functions request download (0x1A), download block (0x1B), download ended (0x1C), start upload
(0x1D), upload (0x1E), end upload (0x1F) with the block file name, PI service (0x28) with its
service name (_INSE, _DELE, P_PROGRAM, _MODU, _GARB...), PLC stop (0x29), and the userdata
header with its function group and subfunction. Field names follow the Wireshark s7comm
dissector (the protocol is not publicly specified).
"""

from __future__ import annotations

from scapy.config import conf
from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldLenField,
    PacketLenField,
    PacketListField,
    ShortField,
    StrField,
    StrFixedLenField,
    StrLenField,
    ThreeBytesField,
    XByteField,
    XIntField,
    XShortField,
    XStrFixedLenField,
)
from scapy.layers.inet import TCP
from scapy.packet import Packet, bind_layers

from otwatch.agent.decode.layers.robust import RobustPacket

__all__ = [
    "AREAS",
    "BLOCK_TYPES",
    "COTP",
    "FUNCTIONS",
    "ROSCTR",
    "S7",
    "S7_PORT",
    "TPKT",
    "USERDATA_GROUPS",
    "USERDATA_SUBFUNCTIONS",
    "S7BlockParameter",
    "S7GenericParameter",
    "S7PIServiceParameter",
    "S7SetupParameter",
    "S7StopParameter",
    "S7UserDataParameter",
    "S7VarAckParameter",
    "S7VarItem",
    "S7VarParameter",
    "block_name",
    "frame_length",
    "resync",
]

S7_PORT = 102
PROTOCOL_ID = 0x32

ROSCTR = {1: "Job", 2: "Ack", 3: "Ack_Data", 7: "Userdata"}
FUNCTIONS = {
    0x00: "CPU services",
    0x04: "Read Var",
    0x05: "Write Var",
    0x1A: "Request download",
    0x1B: "Download block",
    0x1C: "Download ended",
    0x1D: "Start upload",
    0x1E: "Upload",
    0x1F: "End upload",
    0x28: "PI-Service",
    0x29: "PLC Stop",
    0xF0: "Setup communication",
}
USERDATA_GROUPS = {
    0: "Mode-transition",
    1: "Programmer commands",
    2: "Cyclic data",
    3: "Block functions",
    4: "CPU functions",
    5: "Security",
    6: "PBC BSEND/BRECV",
    7: "Time functions",
    15: "NC programming",
}
USERDATA_SUBFUNCTIONS = {
    (0, 0): "STOP",
    (0, 1): "Warm Restart",
    (0, 2): "RUN",
    (0, 3): "Hot Restart",
    (0, 4): "HOLD",
    (0, 6): "Cold Restart",
    (0, 9): "RUN_R",
    (0, 11): "LINK-UP",
    (0, 12): "UPDATE",
    (1, 0x01): "Request diag data (Type 1)",
    (1, 0x02): "VarTab",
    (1, 0x0C): "Erase",
    (1, 0x0E): "Read diag data",
    (1, 0x0F): "Remove diag data",
    (1, 0x10): "Forces",
    (1, 0x13): "Request diag data (Type 2)",
    (2, 0x01): "Cyclic transfer",
    (2, 0x04): "Unsubscribe",
    (2, 0x05): "Change driven transfer",
    (2, 0x07): "Change driven transfer modify",
    (3, 1): "List blocks",
    (3, 2): "List blocks of type",
    (3, 3): "Get block info",
    (4, 1): "Read SZL",
    (4, 2): "Message service",
    (4, 3): "Diagnostic message",
    (5, 1): "PLC password",
    (5, 2): "Clean session",
    (7, 1): "Read clock",
    (7, 2): "Set clock",
    (7, 3): "Read clock (following)",
    (7, 4): "Set clock",
}
AREAS = {
    0x03: "System info",
    0x05: "System flags",
    0x06: "Analog inputs",
    0x07: "Analog outputs",
    0x1C: "Counters",
    0x1D: "Timers",
    0x1E: "IEC counters",
    0x1F: "IEC timers",
    0x80: "Direct peripheral access",
    0x81: "Inputs",
    0x82: "Outputs",
    0x83: "Flags",
    0x84: "Data blocks",
    0x85: "Instance data blocks",
    0x86: "Local data",
}
BLOCK_TYPES = {
    "08": "OB",
    "0A": "DB",
    "0B": "SDB",
    "0C": "FC",
    "0D": "SFC",
    "0E": "FB",
    "0F": "SFB",
}


def block_name(filename: bytes) -> str | None:
    """``_0800001P`` → ``OB1``: the block a download/upload file name designates."""
    text = filename.decode("latin-1")
    if len(text) < 8 or text[0] != "_" or not text[3:8].isdigit():
        return None
    kind = BLOCK_TYPES.get(text[1:3].upper(), f"block type {text[1:3]}")
    return f"{kind}{int(text[3:8])}"


def frame_length(buf: bytes, off: int) -> int | None:
    """Reassembly framing for TPKT: total length, None if unknown yet, 0 if not a TPKT."""
    if len(buf) - off < 4:
        if buf[off] != 3 or (len(buf) - off > 1 and buf[off + 1] != 0):
            return 0
        return None
    if buf[off] != 3 or buf[off + 1] != 0:
        return 0
    length = (buf[off + 2] << 8) | buf[off + 3]
    return length if length >= 7 else 0


def resync(buf: bytes, off: int) -> int:
    return buf.find(b"\x03\x00", off)


# -- S7 parameters ----------------------------------------------------------------------------


class S7VarItem(RobustPacket):
    """One item of a read/write var request; S7ANY (syntax id 0x10) addresses are decoded."""

    name = "S7 Var Item"
    fields_desc = [
        XByteField("specification_type", 0x12),
        FieldLenField("item_length", None, length_of="detail", fmt="B",
                      adjust=lambda pkt, x: x + (10 if pkt.syntax_id == 0x10 else 1)),
        XByteField("syntax_id", 0x10),
        ConditionalField(ByteField("transport_size", 2), lambda p: p.syntax_id == 0x10),
        ConditionalField(ShortField("count", 1), lambda p: p.syntax_id == 0x10),
        ConditionalField(ShortField("db_number", 0), lambda p: p.syntax_id == 0x10),
        ConditionalField(ByteEnumField("area", 0x84, AREAS), lambda p: p.syntax_id == 0x10),
        ConditionalField(ThreeBytesField("address", 0), lambda p: p.syntax_id == 0x10),
        StrLenField(
            "detail", b"",
            length_from=lambda p: max(0, (p.item_length or 0) - (10 if p.syntax_id == 0x10 else 1)),
        ),
    ]  # fmt: skip

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class S7SetupParameter(RobustPacket):
    name = "S7 Setup Communication"
    fields_desc = [
        XByteField("function", 0xF0),
        XByteField("reserved", 0),
        ShortField("max_amq_calling", 1),
        ShortField("max_amq_called", 1),
        ShortField("pdu_length", 480),
    ]


class S7VarParameter(RobustPacket):
    name = "S7 Read/Write Var Request"
    fields_desc = [
        ByteEnumField("function", 0x04, FUNCTIONS),
        FieldLenField("item_count", None, count_of="items", fmt="B"),
        PacketListField("items", [], S7VarItem, count_from=lambda p: p.item_count,
                        max_count=255),
    ]  # fmt: skip


class S7VarAckParameter(RobustPacket):
    name = "S7 Read/Write Var Response"
    fields_desc = [ByteEnumField("function", 0x04, FUNCTIONS), ByteField("item_count", 1)]


class S7BlockParameter(RobustPacket):
    """Download (0x1A-0x1C) and upload (0x1D-0x1F) jobs; the file name designates the block."""

    name = "S7 Block Function"
    fields_desc = [
        ByteEnumField("function", 0x1D, FUNCTIONS),
        XByteField("function_status", 0),
        XShortField("unknown", 0),
        XIntField("upload_id", 0),
        ConditionalField(
            FieldLenField("filename_length", None, length_of="filename", fmt="B"),
            lambda p: p.function in (0x1A, 0x1B, 0x1C, 0x1D),
        ),
        ConditionalField(
            StrLenField("filename", b"_0800001P", length_from=lambda p: p.filename_length),
            lambda p: p.function in (0x1A, 0x1B, 0x1C, 0x1D),
        ),
        StrField("trailer", b""),
    ]

    @property
    def block(self) -> str | None:
        return block_name(self.filename) if self.filename else None


class S7PIServiceParameter(RobustPacket):
    """PI service (program invocation): _INSE/_DELE (block activation/deletion), P_PROGRAM
    (PLC start), _MODU (copy RAM to ROM), _GARB (compress memory)..."""

    name = "S7 PI-Service"
    fields_desc = [
        ByteEnumField("function", 0x28, FUNCTIONS),
        XStrFixedLenField("unknown", b"\x00" * 6 + b"\xfd", 7),
        FieldLenField("parameter_block_length", None, length_of="parameter_block", fmt="!H"),
        StrLenField("parameter_block", b"", length_from=lambda p: p.parameter_block_length),
        FieldLenField("service_name_length", None, length_of="service_name", fmt="B"),
        StrLenField("service_name", b"P_PROGRAM", length_from=lambda p: p.service_name_length),
    ]


class S7StopParameter(RobustPacket):
    name = "S7 PLC Stop"
    fields_desc = [
        ByteEnumField("function", 0x29, FUNCTIONS),
        XStrFixedLenField("unknown", b"\x00" * 5, 5),
        FieldLenField("service_name_length", None, length_of="service_name", fmt="B"),
        StrLenField("service_name", b"P_PROGRAM", length_from=lambda p: p.service_name_length),
    ]


class S7GenericParameter(RobustPacket):
    """Any other function (and acks of block, PI and stop functions): code + raw rest."""

    name = "S7 Parameter"
    fields_desc = [ByteEnumField("function", 0x00, FUNCTIONS), StrField("rest", b"")]


class S7UserDataParameter(RobustPacket):
    name = "S7 Userdata Parameter"
    fields_desc = [
        StrFixedLenField("head", b"\x00\x01\x12", 3),
        ByteField("parameter_length", None),
        XByteField("method", 0x11),
        BitEnumField("type", 4, 4, {0: "Push", 4: "Request", 8: "Response"}),
        BitEnumField("function_group", 4, 4, USERDATA_GROUPS),
        ByteField("subfunction", 1),
        ByteField("sequence_number", 0),
        ConditionalField(ByteField("data_unit_reference", 0), lambda p: p.parameter_length == 8),
        ConditionalField(ByteField("last_data_unit", 0), lambda p: p.parameter_length == 8),
        ConditionalField(XShortField("error_code", 0), lambda p: p.parameter_length == 8),
    ]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.parameter_length is None:
            p = p[:3] + bytes([len(p) - 4]) + p[4:]
        return p + pay

    @property
    def subfunction_name(self) -> str:
        key = (self.function_group, self.subfunction)
        return USERDATA_SUBFUNCTIONS.get(key, f"subfunction {self.subfunction}")


_JOB_PARAMETERS: dict[int, type[Packet]] = {
    0xF0: S7SetupParameter,
    0x04: S7VarParameter,
    0x05: S7VarParameter,
    0x1A: S7BlockParameter,
    0x1B: S7BlockParameter,
    0x1C: S7BlockParameter,
    0x1D: S7BlockParameter,
    0x1E: S7BlockParameter,
    0x1F: S7BlockParameter,
    0x28: S7PIServiceParameter,
    0x29: S7StopParameter,
}
_ACK_PARAMETERS: dict[int, type[Packet]] = {
    0xF0: S7SetupParameter,
    0x04: S7VarAckParameter,
    0x05: S7VarAckParameter,
}


def _parameter(data: bytes, _parent: Packet | None = None, **kwargs) -> Packet:
    """The parameter class for the PDU type (ROSCTR) of the enclosing S7 header."""
    rosctr = getattr(_parent, "rosctr", 1)
    if rosctr == 7 or data[:3] == b"\x00\x01\x12":
        cls: type[Packet] = S7UserDataParameter
    elif rosctr == 1:
        cls = _JOB_PARAMETERS.get(data[0], S7GenericParameter) if data else S7GenericParameter
    else:
        cls = _ACK_PARAMETERS.get(data[0], S7GenericParameter) if data else S7GenericParameter
    return cls(data, _parent=_parent, **kwargs)


class S7(RobustPacket):
    name = "S7comm"
    fields_desc = [
        XByteField("protocol_id", PROTOCOL_ID),
        ByteEnumField("rosctr", 1, ROSCTR),
        XShortField("redundancy_id", 0),
        ShortField("pdu_reference", 0),
        ShortField("parameter_length", None),
        ShortField("data_length", None),
        ConditionalField(XByteField("error_class", 0), lambda p: p.rosctr in (2, 3)),
        ConditionalField(XByteField("error_code", 0), lambda p: p.rosctr in (2, 3)),
        # scapy's stubs type the default as a Packet and the class as a type; None (no
        # parameter) and a function picking the class by the bytes are what it takes
        PacketLenField("parameter", None, _parameter,  # type: ignore[arg-type]
                       length_from=lambda p: p.parameter_length or 0),
        StrLenField("data", b"", length_from=lambda p: p.data_length or 0),
    ]  # fmt: skip

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.parameter_length is None:
            size = len(bytes(self.parameter)) if self.parameter is not None else 0
            p = p[:6] + size.to_bytes(2, "big") + p[8:]
        if self.data_length is None:
            p = p[:8] + len(self.data or b"").to_bytes(2, "big") + p[10:]
        return p + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


class COTP(RobustPacket):
    name = "COTP"
    fields_desc = [
        ByteField("length", None),
        ByteEnumField("pdu_type", 0xF0, {0xE0: "CR", 0xD0: "CC", 0x80: "DR", 0xC0: "DC",
                                          0xF0: "DT", 0x10: "ED", 0x60: "AK", 0x20: "EA",
                                          0x50: "RJ", 0x70: "ER"}),
        ConditionalField(BitField("eot", 1, 1), lambda p: p.pdu_type == 0xF0),
        ConditionalField(BitField("tpdu_number", 0, 7), lambda p: p.pdu_type == 0xF0),
        ConditionalField(
            StrLenField("variable_part", b"", length_from=lambda p: max(0, (p.length or 1) - 1)),
            lambda p: p.pdu_type != 0xF0,
        ),
    ]  # fmt: skip

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.length is None:
            p = bytes([len(p) - 1]) + p[1:]
        return p + pay

    def guess_payload_class(self, payload: bytes):
        if self.pdu_type == 0xF0 and payload[:1] == b"\x32":
            return S7
        return conf.raw_layer


class TPKT(RobustPacket):
    """One TPKT packet; the packets after it in the same segment chain as payloads."""

    name = "TPKT"
    fields_desc = [
        ByteField("version", 3),
        ByteField("reserved", 0),
        ShortField("length", None),
        # scapy's stubs type the default as a Packet; None (no payload packet) is what it takes
        PacketLenField("cotp", None, COTP, length_from=lambda p: max(0, (p.length or 4) - 4)),  # type: ignore[arg-type]
    ]

    def post_build(self, p: bytes, pay: bytes) -> bytes:
        if self.length is None:
            p = p[:2] + len(p).to_bytes(2, "big") + p[4:]
        return p + pay

    def guess_payload_class(self, payload: bytes):
        return TPKT if payload[:2] == b"\x03\x00" and len(payload) >= 7 else conf.raw_layer


bind_layers(TCP, TPKT, dport=S7_PORT)
bind_layers(TCP, TPKT, sport=S7_PORT)
