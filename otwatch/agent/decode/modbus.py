"""Modbus/TCP protocol knowledge shared by the detectors and the custom-rule matcher: function
and exception names, which functions address which memory table, MBAP framing."""

from __future__ import annotations

import struct

__all__ = [
    "EXCEPTION_NAMES",
    "FUNCTION_NAMES",
    "MBAP",
    "PUBLIC",
    "SINGLE_ADDRESS",
    "TABLES",
    "USER_DEFINED",
    "address_ranges",
    "function_text",
    "iter_mbap",
]

FUNCTION_NAMES = {
    1: "Read Coils",
    2: "Read Discrete Inputs",
    3: "Read Holding Registers",
    4: "Read Input Registers",
    5: "Write Single Coil",
    6: "Write Single Register",
    7: "Read Exception Status",
    8: "Diagnostics",
    11: "Get Comm Event Counter",
    12: "Get Comm Event Log",
    15: "Write Multiple Coils",
    16: "Write Multiple Registers",
    17: "Report Server ID",
    20: "Read File Record",
    21: "Write File Record",
    22: "Mask Write Register",
    23: "Read/Write Multiple Registers",
    24: "Read FIFO Queue",
    43: "Encapsulated Interface Transport",
    90: "Schneider Electric UMAS",
}
PUBLIC = frozenset(c for c in FUNCTION_NAMES if c != 90)
USER_DEFINED = frozenset([*range(65, 73), *range(100, 111)])
EXCEPTION_NAMES = {
    1: "Illegal Function",
    2: "Illegal Data Address",
    3: "Illegal Data Value",
    4: "Server Device Failure",
    5: "Acknowledge",
    6: "Server Device Busy",
    8: "Memory Parity Error",
    10: "Gateway Path Unavailable",
    11: "Gateway Target Device Failed to Respond",
}
#: function → (table, verb) for requests that address a memory range.
TABLES = {
    1: ("coils", "read"),
    2: ("discrete inputs", "read"),
    3: ("holding registers", "read"),
    4: ("input registers", "read"),
    5: ("coils", "wrote"),
    6: ("holding registers", "wrote"),
    15: ("coils", "wrote"),
    16: ("holding registers", "wrote"),
    22: ("holding registers", "wrote"),
    23: ("holding registers", "read and wrote"),
}
SINGLE_ADDRESS = frozenset({5, 6, 22})
MBAP = struct.Struct(">HHHBB")
_u16 = struct.Struct(">H").unpack_from


def iter_mbap(payload: bytes) -> list[tuple[int, int, int, int]]:
    """``(offset, length, unit, function)`` of each complete Modbus/TCP frame in a segment.

    Stops at the first frame whose protocol id is not 0 or whose length is impossible, so a
    mid-stream or garbage segment yields nothing rather than nonsense.
    """
    out = []
    off, size = 0, len(payload)
    while off + 8 <= size:
        _tid, proto, length, unit, function = MBAP.unpack_from(payload, off)
        if proto != 0 or length < 2 or length > 254:
            break
        out.append((off, length, unit, function))
        off += 6 + length
    return out


def function_text(code: int) -> str:
    name = FUNCTION_NAMES.get(code)
    return f"function {code} ({name})" if name else f"function {code}"


def address_ranges(fc: int, pdu: bytes) -> list[tuple[int, int]]:
    """``(start, count)`` of the addresses a request touches (empty when truncated)."""
    if fc in SINGLE_ADDRESS:
        return [(_u16(pdu, 1)[0], 1)] if len(pdu) >= 3 else []
    if len(pdu) < 5:
        return []
    out = [(_u16(pdu, 1)[0], _u16(pdu, 3)[0])]
    if fc == 23 and len(pdu) >= 9:
        out.append((_u16(pdu, 5)[0], _u16(pdu, 7)[0]))
    return out
