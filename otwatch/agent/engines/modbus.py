"""Modbus/TCP detectors: unpermitted function codes (policy) and exception responses (protocol).

Parses the MBAP header and function code with ``struct`` (every PDU in a segment, bounded by
the MBAP length field); Scapy's Modbus layer is used only where a detector needs the full PDU.
The baseline learns ``client>server:function`` triples; after learning, a triple not in it
raises *Unpermitted Usage of Modbus Function Code* (one alert per client/server pair, as the
spec aggregates it). A response with the exception bit set raises *Modbus Exception*.
"""

from __future__ import annotations

import struct

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.detection import Detection

__all__ = ["FUNCTION_NAMES", "ModbusEngine", "iter_mbap"]

UNPERMITTED_FC = "unpermitted_usage_of_modbus_function_code"
EXCEPTION = "modbus_exception"
MODBUS_PORT = 502

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
}

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

_MBAP = struct.Struct(">HHHBB")


def iter_mbap(payload: bytes) -> list[tuple[int, int, int, int]]:
    """``(offset, length, unit, function)`` of each complete Modbus/TCP frame in a segment.

    Stops at the first frame whose protocol id is not 0 or whose length is impossible, so a
    mid-stream or garbage segment yields nothing rather than nonsense.
    """
    out = []
    off, size = 0, len(payload)
    while off + 8 <= size:
        _tid, proto, length, unit, function = _MBAP.unpack_from(payload, off)
        if proto != 0 or length < 2 or length > 254:
            break
        out.append((off, length, unit, function))
        off += 6 + length
    return out


def function_text(code: int) -> str:
    name = FUNCTION_NAMES.get(code)
    return f"function {code} ({name})" if name else f"function {code}"


class ModbusEngine(Engine):
    name = "modbus"
    type_ids = frozenset({UNPERMITTED_FC, EXCEPTION})
    apps = frozenset({"modbus"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self._allowed = ctx.baseline.kind("modbus_fc")

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if len(payload) < 8:
            return None
        if rec.dport == MODBUS_PORT:
            return self._request(rec, payload)
        if rec.sport == MODBUS_PORT:
            return self._response(rec, payload)
        return None

    def _request(self, rec: PacketRecord, payload: bytes) -> list[Detection] | None:
        out = None
        client, server = rec.src_ip, rec.dst_ip
        for _off, _length, unit, function in iter_mbap(payload):
            key = f"{client}>{server}:{function}"
            if key in self._allowed:
                continue
            if self.ctx.learning.active:
                self.ctx.baseline.add("modbus_fc", key, rec.ts_ns, {"unit": unit})
                continue
            out = out or []
            out.append(
                self.detect(
                    UNPERMITTED_FC,
                    rec.ts_ns,
                    f"{client} used Modbus {function_text(function)} on {server} (unit {unit}),"
                    " not seen during learning",
                    source_address=client,
                    destination_address=server,
                    protocol="modbus",
                    function_code=function,
                    unit_id=unit,
                )
            )
        return out

    def _response(self, rec: PacketRecord, payload: bytes) -> list[Detection] | None:
        out = None
        server, client = rec.src_ip, rec.dst_ip
        for off, length, unit, function in iter_mbap(payload):
            if function < 0x80 or length < 3:
                continue
            code = payload[off + 8] if off + 8 < len(payload) else None
            if code is None:
                continue
            request_fc = function & 0x7F
            reason = EXCEPTION_NAMES.get(code, "unknown exception")
            out = out or []
            out.append(
                self.detect(
                    EXCEPTION,
                    rec.ts_ns,
                    f"{server} answered Modbus {function_text(request_fc)} from {client} "
                    f"(unit {unit}) with exception {code} ({reason})",
                    source_address=server,
                    destination_address=client,
                    protocol="modbus",
                    function_code=request_fc,
                    exception_code=code,
                    unit_id=unit,
                )
            )
        return out
