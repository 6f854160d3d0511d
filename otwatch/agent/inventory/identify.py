"""What industrial devices say about themselves: pure parsers of identification replies.

Each parser takes one packet's payload and returns ``(field, value)`` pairs about the
*sender*, or an empty list when the packet carries no identification. Callers run them only
on packets a cheap byte check already marked as candidates (see ``engine.py``), so none of
this is on the per-packet path of ordinary polling traffic.

Fields: ``vendor``, ``vendor_id``, ``model``, ``product_code``, ``firmware``, ``serial``,
``device_type``, ``name`` (the device's own configured name), ``order_number``,
``plant_name``, ``role`` (PROFINET), ``dnp3_address``, ``bacnet_instance``.
"""

from __future__ import annotations

import struct

from otwatch.agent.decode.cip import (
    Identity,
    identity_from_attributes,
    list_identity,
    parse_enip,
)
from otwatch.agent.decode.layers.bacnet import parse_tag
from otwatch.agent.engines.profinet import dcp_blocks
from otwatch.agent.inventory.vendors import (
    BACNET_VENDORS,
    CIP_DEVICE_TYPES,
    CIP_VENDORS,
    DCP_ROLES,
    vendor_name,
)

__all__ = [
    "Facts",
    "bacnet_facts",
    "cip_identity_facts",
    "dcp_facts",
    "dnp3_sender",
    "enip_list_identity_facts",
    "modbus_device_id_facts",
    "s7_szl_facts",
]

Facts = list[tuple[str, str]]
_u16 = struct.Struct(">H").unpack_from
_u16le = struct.Struct("<H").unpack_from

# -- Modbus FC 43 / MEI 14 ----------------------------------------------------------------

_MODBUS_OBJECTS = {0: "vendor", 1: "product_code", 2: "firmware", 3: "vendor_url",
                   4: "product_name", 5: "model", 6: "application_name"}  # fmt: skip


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").strip("\x00 ").strip()


def modbus_device_id_facts(payload: bytes) -> Facts:
    """A Read Device Identification response (MBAP + FC 43 + MEI 14 + objects)."""
    if len(payload) < 14 or payload[7] != 0x2B or payload[8] != 0x0E:
        return []
    count, pos, out = payload[13], 14, []
    for _ in range(count):
        if pos + 2 > len(payload):
            break
        obj, length = payload[pos], payload[pos + 1]
        value = payload[pos + 2 : pos + 2 + length]
        if len(value) < length:
            break
        pos += 2 + length
        name = _MODBUS_OBJECTS.get(obj)
        if name is not None and _text(value):
            out.append((name, _text(value)))
    return out


# -- EtherNet/IP --------------------------------------------------------------------------


def _identity_facts(identity: Identity) -> Facts:
    return [
        ("vendor_id", str(identity.vendor)),
        ("vendor", vendor_name(CIP_VENDORS, identity.vendor)),
        ("device_type", CIP_DEVICE_TYPES.get(identity.device_type, f"type {identity.device_type}")),
        ("product_code", str(identity.product_code)),
        ("firmware", identity.revision),
        ("serial", f"0x{identity.serial:08x}"),
        ("model", identity.product_name.strip()),
    ]


def enip_list_identity_facts(payload: bytes) -> Facts:
    """A ListIdentity reply (encapsulation command 0x63 with an identity item)."""
    header = parse_enip(payload)
    if header is None or header.command != 0x0063:
        return []
    identity = list_identity(header.body)
    return [] if identity is None else _identity_facts(identity)


def cip_identity_facts(reply_data: bytes) -> Facts:
    """The data of a Get_Attributes_All reply of the Identity object (class 1)."""
    identity = identity_from_attributes(reply_data)
    return [] if identity is None else _identity_facts(identity)


# -- S7comm SZL ---------------------------------------------------------------------------

_SZL_1C = {1: "plant_name", 2: "name", 3: "plant_designation", 5: "serial", 7: "model"}


def s7_szl_facts(payload: bytes) -> Facts:
    """A Read SZL response (userdata, CPU functions) for SZL 0x0011 or 0x001C."""
    # TPKT (4) + COTP DT (3) + S7 header (10 for userdata)
    if len(payload) < 17 or payload[7] != 0x32 or payload[8] != 0x07:
        return []
    param_len, data_len = _u16(payload, 13)[0], _u16(payload, 15)[0]
    param = payload[17 : 17 + param_len]
    data = payload[17 + param_len : 17 + param_len + data_len]
    # param: 00 01 12 len method type|group subfunction seq ...; response type 8, group 4
    if len(param) < 8 or param[5] != 0x84 or param[6] != 0x01 or len(data) < 12:
        return []
    if data[0] != 0xFF:
        return []
    szl_id, record_len, count = _u16(data, 4)[0], _u16(data, 8)[0], _u16(data, 10)[0]
    records = data[12:]
    out: Facts = []
    for i in range(min(count, 64)):
        rec = records[i * record_len : (i + 1) * record_len]
        if len(rec) < record_len or record_len < 4:
            break
        index = _u16(rec, 0)[0]
        if szl_id & 0xFF == 0x11 and record_len >= 28:
            order = _text(rec[2:22])
            if index == 0x0001 and order:
                out.append(("order_number", order))
            elif index == 0x0007:  # basic firmware: version in Ausbg/Ausbe ("V a.b.c")
                out.append(("firmware", f"V{rec[25]}.{rec[26]}.{rec[27]}"))
            elif index == 0x0006 and order:
                out.append(("hardware", order))
        elif szl_id & 0xFF == 0x1C:
            name = _SZL_1C.get(index)
            if name is not None and _text(rec[2:]):
                out.append((name, _text(rec[2:])))
    return out


# -- BACnet -------------------------------------------------------------------------------

_BACNET_CHARSETS = {0: "utf-8", 3: "utf-32-be", 4: "utf-16-be", 5: "latin-1"}
_BACNET_PROPERTIES = {77: "name", 70: "model", 44: "firmware", 12: "software",
                      121: "vendor", 120: "vendor_id"}  # fmt: skip


def _bacnet_apdu(payload: bytes) -> bytes | None:
    """The APDU of a BVLC/NPDU datagram (None for network-layer messages)."""
    if len(payload) < 6 or payload[0] != 0x81:
        return None
    npdu = payload[4:]
    control, pos = npdu[1], 2
    if control & 0x80:
        return None
    if control & 0x20:  # destination: DNET, DLEN, DADR
        if pos + 3 > len(npdu):
            return None
        pos += 3 + npdu[pos + 2]
    if control & 0x08:  # source: SNET, SLEN, SADR
        if pos + 3 > len(npdu):
            return None
        pos += 3 + npdu[pos + 2]
    if control & 0x20:
        pos += 1  # hop count
    return npdu[pos:]


def _unsigned(data: bytes, pos: int, length: int) -> int:
    return int.from_bytes(data[pos : pos + length], "big")


def bacnet_facts(payload: bytes) -> Facts:
    """An I-Am, or a ReadProperty Complex-ACK of a device object's identity property."""
    apdu = _bacnet_apdu(payload)
    if not apdu or len(apdu) < 2:
        return []
    if apdu[0] == 0x10 and apdu[1] == 0x00:  # unconfirmed I-Am
        return _i_am(apdu, 2)
    if apdu[0] == 0x30 and len(apdu) >= 3 and apdu[2] == 12:  # unsegmented ReadProperty ACK
        return _read_property_ack(apdu, 3)
    return []


def _i_am(apdu: bytes, pos: int) -> Facts:
    values = []
    for _ in range(4):
        tag = parse_tag(apdu, pos)
        if tag is None:
            return []
        _number, _context, length, header = tag
        values.append(_unsigned(apdu, pos + header, length))
        pos += header + length
    instance = values[0] & 0x3FFFFF
    return [
        ("bacnet_instance", str(instance)),
        ("vendor_id", str(values[3])),
        ("vendor", vendor_name(BACNET_VENDORS, values[3])),
    ]


def _read_property_ack(apdu: bytes, pos: int) -> Facts:
    tag = parse_tag(apdu, pos)
    if tag is None or tag[2] != 4:
        return []
    object_id = _unsigned(apdu, pos + tag[3], 4)
    if object_id >> 22 != 8:  # only the device object
        return []
    pos += tag[3] + 4
    tag = parse_tag(apdu, pos)
    if tag is None:
        return []
    prop = _unsigned(apdu, pos + tag[3], tag[2])
    pos += tag[3] + tag[2]
    name = _BACNET_PROPERTIES.get(prop)
    tag = parse_tag(apdu, pos)
    if name is None or tag is None or tag[0] != 3:  # opening tag 3
        return []
    pos += tag[3]
    tag = parse_tag(apdu, pos)
    if tag is None:
        return []
    number, context, length, header = tag
    value = apdu[pos + header : pos + header + length]
    if not context and number == 7 and value:  # character string: charset, then text
        charset = _BACNET_CHARSETS.get(value[0], "latin-1")
        text = value[1:].decode(charset, "replace").strip("\x00 ")
        facts = [(name, text)] if text else []
    elif not context and number == 2:
        facts = [(name, str(_unsigned(value, 0, length)))]
        if prop == 120:
            facts.append(("vendor", vendor_name(BACNET_VENDORS, int(facts[0][1]))))
    else:
        return []
    return facts


# -- PROFINET DCP -------------------------------------------------------------------------


def dcp_facts(payload: bytes) -> Facts:
    """An Identify or Get response, or a Hello (``payload`` starts at the frame ID)."""
    if len(payload) < 12:
        return []
    frame_id, service, kind = _u16(payload, 0)[0], payload[2], payload[3]
    if not (frame_id == 0xFEFC or (frame_id in (0xFEFD, 0xFEFF) and kind == 1)):
        return []
    if frame_id != 0xFEFC and service not in (3, 5):
        return []
    out: Facts = []
    for option, suboption, data in dcp_blocks(payload):
        body = data[2:]  # BlockInfo
        if option == 2 and suboption == 2 and body:
            out.append(("name", _text(body)))
        elif option == 2 and suboption == 1 and body:
            out.append(("model", _text(body)))
        elif option == 2 and suboption == 3 and len(body) >= 4:
            out.append(("vendor_id", f"0x{_u16(body, 0)[0]:04x}"))
            out.append(("device_id", f"0x{_u16(body, 2)[0]:04x}"))
        elif option == 2 and suboption == 4 and body:
            roles = [name for bit, name in DCP_ROLES.items() if body[0] & bit]
            out.append(("role", ", ".join(roles) or f"0x{body[0]:02x}"))
        elif option == 1 and suboption == 2 and len(body) >= 4:
            out.append(("ip", ".".join(str(b) for b in body[:4])))
    return out


# -- DNP3 ---------------------------------------------------------------------------------


def dnp3_sender(payload: bytes) -> tuple[int, bool] | None:
    """``(link source address, sent by the master)`` of a DNP3 link frame, or None."""
    if len(payload) < 10 or payload[0] != 0x05 or payload[1] != 0x64:
        return None
    return _u16le(payload, 6)[0], bool(payload[3] & 0x80)
