"""Modbus/TCP detectors: function-code and address-range policy, protocol violations,
exceptions, device restarts and mode changes, firmware revision changes, silent devices.

Hot path: Modbus polling repeats the same requests, so each flow remembers the *signatures*
(MBAP header and PDU without the transaction id or written values) of requests it has already
checked and found permitted; such a request costs a slice and a set lookup. Everything else is
parsed with ``struct`` (every PDU in a segment, bounded by the MBAP length); Scapy's Modbus
layer dissects only Read Device Identification responses (cached), for the firmware revision.

Requests (to port 502): function code 0 (*Illegal MODBUS Operation (Function Code Zero)*), the
exception bit set (*... (Exception Raised by Master)*), reserved or unassigned codes (*Usage of
a Reserved Function Code*), function 90 (Schneider UMAS, *Unpermitted Modbus Schneider Electric
Extension*), any other unlearned client → server code (*Unpermitted Usage of Modbus Function
Code*), a learned code on an unlearned register/coil block (*Modbus Address Range Violation*),
FC8/01 Restart Communications (*Controller Reset*, judgement: it restarts the device's
communication stack) and FC8/04 Force Listen Only (*PLC Operating Mode Changed*: the device
stops answering). Three requests without a response within 5 min: *Suspicion of Unresponsive
MODBUS Device*. A non-zero MBAP protocol id in an otherwise well-formed frame: *Illegal
Protocol Version*; an impossible MBAP length counts towards *Excessive Malformed Packets*.

Responses: an exception raises *Modbus Exception*, and by code *Slave Device Received Illegal
Function Code / Data Address / Data Value Parameter* (1-3; the primary is the source) or
*Slave Device Unrecoverable Failure* (4); an unlearned (function, code) pair raises *Function
Code Raised Unauthorized Exception*. A revision in a Read Device Identification response that
differs from the learned one raises *Modbus Firmware Version Changed*.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.layers.cache import DissectCache
from otwatch.agent.decode.modbus import (
    EXCEPTION_NAMES,
    MBAP,
    PUBLIC,
    SINGLE_ADDRESS,
    TABLES,
    USER_DEFINED,
    address_ranges,
    function_text,
)
from otwatch.agent.engines.base import EngineContext
from otwatch.agent.engines.detection import Detection, Repeat
from otwatch.agent.engines.ot_support import (
    MALFORMED_SESSION,
    MalformedCounter,
    OtEngine,
    Policy,
)

__all__ = ["Config", "ModbusEngine"]

UNPERMITTED_FC = "unpermitted_usage_of_modbus_function_code"
EXCEPTION = "modbus_exception"
RANGE = "modbus_address_range_violation"
SCHNEIDER = "unpermitted_modbus_schneider_electric_extension"
FC_ZERO = "illegal_modbus_operation_function_code_zero"
MASTER_EXCEPTION = "illegal_modbus_operation_exception_raised_by_master"
RESERVED_FC = "usage_of_a_reserved_function_code"
PROTOCOL_VERSION = "illegal_protocol_version"
UNAUTHORIZED_EXCEPTION = "function_code_raised_unauthorized_exception"
ILLEGAL_FUNCTION = "slave_device_received_illegal_function_code"
ILLEGAL_ADDRESS = "slave_device_received_illegal_data_address_parameter"
ILLEGAL_VALUE = "slave_device_received_illegal_data_value_parameter"
DEVICE_FAILURE = "slave_device_unrecoverable_failure"
UNRESPONSIVE = "suspicion_of_unresponsive_modbus_device"
RESET = "controller_reset"
MODE = "plc_operating_mode_changed"
FIRMWARE = "modbus_firmware_version_changed"
MODBUS_PORT = 502

_EXCEPTION_TYPES = {1: ILLEGAL_FUNCTION, 2: ILLEGAL_ADDRESS, 3: ILLEGAL_VALUE}
#: Response function codes with nothing to check (not exceptions, reserved codes or FC43).
_PLAIN_RESPONSES = (PUBLIC | USER_DEFINED | {90}) - {43}
_u16 = struct.Struct(">H").unpack_from
_repeat = tuple.__new__
"""``_repeat(Repeat, (detections, ts))`` is ``Repeat(detections, ts)`` without the named
tuple's Python-level ``__new__``: built for every refused request repeated (an alert storm)."""


@dataclass(frozen=True)
class Config:
    range_block: int = 16
    """Addresses are learned in blocks of this many registers or coils."""
    unanswered_requests: int = 3
    """A flow whose window of ``unanswered_window_s`` holds at least this many requests and
    fewer than one response per this many requests makes its server suspected unresponsive
    (spec: fewer than 1 valid response per 3 requests in 5 min). Judged when the next
    request after the window arrives."""
    unanswered_window_s: float = 300.0
    malformed: int = 2
    malformed_window_s: float = 600.0


_READS_PAST_SIGNATURE = frozenset({8, 23, 43, 90})
"""Diagnostics, read/write multiple, MEI and UMAS requests: their checks read further."""
_POLICY_TYPES = frozenset({UNPERMITTED_FC, RANGE, RESERVED_FC, FC_ZERO, MASTER_EXCEPTION})


class _FlowState:
    __slots__ = ("ok", "refused", "requests", "responses", "window_start")

    def __init__(self) -> None:
        self.ok: set[bytes] = set()
        """Signatures of requests already checked and permitted."""
        self.refused: dict[bytes, tuple[int, bytes, bytes, tuple[Detection, ...]]] = {}
        """Signatures of requests that raised policy detections only: (baseline generation,
        MACs, the detections), so a repeated request (an alert storm without a baseline:
        every poll) repeats them with its own time instead of checking again."""
        self.window_start = 0
        self.requests = 0
        self.responses = 0


class ModbusEngine(OtEngine):
    name = "modbus"
    settings_class = Config
    protocol = "modbus"
    type_ids = frozenset({
        UNPERMITTED_FC, EXCEPTION, RANGE, SCHNEIDER, FC_ZERO, MASTER_EXCEPTION, RESERVED_FC,
        PROTOCOL_VERSION, UNAUTHORIZED_EXCEPTION, ILLEGAL_FUNCTION, ILLEGAL_ADDRESS,
        ILLEGAL_VALUE, DEVICE_FAILURE, UNRESPONSIVE, RESET, MODE, FIRMWARE, MALFORMED_SESSION,
    })  # fmt: skip
    apps = frozenset({"modbus"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx, Config)
        self._fc = Policy(ctx, "modbus_fc")
        self._range = Policy(ctx, "modbus_range")
        self._umas = Policy(ctx, "modbus_umas")
        self._exceptions = Policy(ctx, "modbus_exception")
        self._firmware = Policy(ctx, "modbus_firmware")
        self._revisions: dict[str, str] = {}
        for key in ctx.baseline.kind("modbus_firmware"):
            device, _, revision = key.partition("=")
            self._revisions[device] = revision
        self._malformed = MalformedCounter(self.config.malformed, self.config.malformed_window_s)
        self._window_ns = int(self.config.unanswered_window_s * 1e9)
        self._cache = DissectCache(256)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | Repeat | None:
        payload = rec.payload
        n = len(payload)
        if n < 8:
            if n and (rec.dport == MODBUS_PORT or rec.sport == MODBUS_PORT):
                return self._malformed_frame(rec, f"{n}-byte segment shorter than an MBAP header")
            return None
        if flow is None:
            st = _FlowState()
        else:  # flow_state() inlined: this is the per-packet path
            state = flow.state
            if state is None:
                flow.state = state = {}
            found: _FlowState | None = state.get("modbus")
            if found is None:
                found = state["modbus"] = _FlowState()
            st = found
        single = payload[2] == 0 == payload[3] and (payload[4] << 8 | payload[5]) + 6 == n
        if rec.dport == MODBUS_PORT:
            if single:  # one well-formed PDU: known requests cost a slice and a lookup
                sig = payload[2:10] if payload[7] in SINGLE_ADDRESS else payload[2:12]
                if sig in st.ok:
                    if rec.ts_ns - st.window_start < self._window_ns:
                        st.requests += 1
                        return None
                    return self._count_request(rec, st, None)
                refused = st.refused.get(sig)
                if (
                    refused is not None
                    and refused[0] == self.ctx.baseline.generation
                    and refused[1] == rec.src_mac
                    and refused[2] == rec.dst_mac
                    and not self.ctx.learning.active
                ):
                    ts = rec.ts_ns
                    if ts - st.window_start < self._window_ns:  # no window to judge
                        st.requests += 1
                        return _repeat(Repeat, (refused[3], ts))
                    out = _retimed(refused[3], ts)
                    return self._count_request(rec, st, out)
                return self._request(rec, payload, st, sig)
            return self._request(rec, payload, st, None)
        if rec.sport == MODBUS_PORT:
            st.responses += 1
            if single and payload[7] in _PLAIN_RESPONSES:
                return None
            return self._response(rec, payload)
        return None

    # -- framing ------------------------------------------------------------------------------

    def _frames(self, rec: PacketRecord, payload: bytes, out: list[Detection]):
        """``(unit, function, pdu)`` of each PDU; reports bad framing on the way."""
        off, size = 0, len(payload)
        while off + 8 <= size:
            _tid, proto, length, unit, fc = MBAP.unpack_from(payload, off)
            if length < 2 or length > 254:
                self._malformed_frame(rec, f"impossible MBAP length {length}", out)
                return
            if off + 6 + length > size:
                return  # continues in the next segment
            pdu = payload[off + 7 : off + 6 + length]
            if proto != 0:
                self.emit(out, PROTOCOL_VERSION, rec,
                          f"{rec.src_ip} sent a Modbus/TCP frame with protocol identifier "
                          f"{proto} (must be 0) to {rec.dst_ip}", protocol_id=proto)  # fmt: skip
                return
            yield unit, fc, pdu
            off += 6 + length

    def _malformed_frame(self, rec: PacketRecord, reason: str, out=None):
        own = out is None
        out = [] if own else out
        if self._malformed.hit(rec, "modbus"):
            self.emit(out, MALFORMED_SESSION, rec,
                      f"{rec.src_ip} sent {self.config.malformed} or more malformed Modbus "
                      f"frames to {rec.dst_ip} within {self.config.malformed_window_s:g} s "
                      f"(last: {reason})", reason=reason)  # fmt: skip
        return (out or None) if own else None

    # -- requests -----------------------------------------------------------------------------

    def _count_request(self, rec: PacketRecord, st: _FlowState, out) -> list | None:
        """Count a valid request in the flow's window; judge the window when it has ended."""
        ts = rec.ts_ns
        if ts - st.window_start >= self._window_ns:
            need = self.config.unanswered_requests
            if st.requests >= need and st.responses * need < st.requests:
                out = [] if out is None else out
                self.emit(out, UNRESPONSIVE, rec,
                          f"{rec.dst_ip} gave {st.responses} responses to {st.requests} Modbus "
                          f"requests from {rec.src_ip} within "
                          f"{self.config.unanswered_window_s:g} s")  # fmt: skip
            st.window_start, st.requests, st.responses = ts, 0, 0
        st.requests += 1
        return out or None

    def _request(self, rec, payload, st: _FlowState, sig: bytes | None):
        out: list[Detection] = []
        client, server, ts = rec.src_ip, rec.dst_ip, rec.ts_ns
        permitted, valid = True, False
        for unit, fc, pdu in self._frames(rec, payload, out):
            valid = True
            where = f"{server} (unit {unit})"
            info = {"function_code": fc, "unit_id": unit}
            if fc == 0:
                self.emit(
                    out, FC_ZERO, rec, f"{client} sent Modbus function code 0 to {where}", **info
                )
                permitted = False
                continue
            if fc & 0x80:
                self.emit(out, MASTER_EXCEPTION, rec,
                          f"{client} sent an exception (function {fc & 0x7F} with the exception "
                          f"bit set) as a request to {where}", **info)  # fmt: skip
                permitted = False
                continue
            if fc not in PUBLIC and fc not in USER_DEFINED and fc != 90:
                self.emit(out, RESERVED_FC, rec,
                          f"{client} sent reserved or unassigned Modbus function code {fc} to "
                          f"{where}", **info)  # fmt: skip
                permitted = False
            operation = self._describe(fc, pdu, server, unit)
            if fc == 90:
                if self._umas.violates(f"{client}>{server}", ts, {"unit": unit}):
                    self.emit(
                        out,
                        SCHNEIDER,
                        rec,
                        f"{client} used the Schneider Electric UMAS extension (Modbus "
                        f"function 90) on {where}, not seen during learning",
                        **info,
                    )
                    permitted = False
            elif self._fc.violates(f"{client}>{server}:{fc}", ts, {"unit": unit}):
                self.emit(
                    out,
                    UNPERMITTED_FC,
                    rec,
                    f"{client} {operation}, not seen during learning",
                    **info,
                )
                permitted = False
            elif fc in TABLES and not self._check_range(rec, unit, fc, pdu, operation, out):
                permitted = False
            if fc == 8 and len(pdu) >= 3:
                permitted = self._diagnostics(rec, where, _u16(pdu, 1)[0], info, out) and permitted
        if permitted and sig is not None and not out:
            if len(st.ok) >= 256:
                st.ok.clear()
            st.ok.add(sig)
        elif sig is not None and out and self._repeatable(sig, out):
            if len(st.refused) >= 64:
                st.refused.clear()
            generation = self.ctx.baseline.generation
            st.refused[sig] = (generation, rec.src_mac, rec.dst_mac, tuple(out))
        if valid:
            self._count_request(rec, st, out)
        return out or None

    def _repeatable(self, sig: bytes, out: list[Detection]) -> bool:
        """Would the same request raise exactly ``out`` again (but for the time)? Yes for
        policy detections, judged from the signature's bytes alone, once learning is over:
        function codes whose checks read no byte past the signature."""
        return (
            sig[5] not in _READS_PAST_SIGNATURE
            and not self.ctx.learning.active
            and all(d.type_id in _POLICY_TYPES for d in out)
        )

    @staticmethod
    def _describe(fc: int, pdu: bytes, server: str, unit: int) -> str:
        """``wrote 2 holding registers at 100 on 10.1.1.20 (unit 1, Modbus function 16)``."""
        table = TABLES.get(fc)
        ranges = address_ranges(fc, pdu) if table else []
        if not ranges:
            return f"used Modbus {function_text(fc)} on {server} (unit {unit})"
        assert table is not None  # ranges is empty without a table
        name, verb = table
        start, count = ranges[-1] if fc == 23 else ranges[0]
        noun = name if count != 1 else name[:-1]
        return f"{verb} {count} {noun} at {start} on {server} (unit {unit}, Modbus function {fc})"

    def _check_range(self, rec, unit, fc, pdu, operation, out) -> bool:
        table = TABLES[fc][0]
        block = self.config.range_block
        server = rec.dst_ip
        for start, count in address_ranges(fc, pdu):
            if count == 0:
                continue
            first, last = start // block, min(start + count - 1, 0xFFFF) // block
            for index in range(first, min(last, first + 255) + 1):
                key = f"{server}:{unit}:{table}:{index}"
                if self._range.violates(key, rec.ts_ns):
                    self.emit(out, RANGE, rec,
                              f"{rec.src_ip} {operation}; {table} {index * block}-"
                              f"{index * block + block - 1} were not accessed during learning",
                              function_code=fc, unit_id=unit, table=table,
                              address=index * block)  # fmt: skip
                    return False
        return True

    def _diagnostics(self, rec, where: str, sub: int, info: dict, out) -> bool:
        if sub == 1:
            self.emit(out, RESET, rec,
                      f"{rec.src_ip} sent Modbus Restart Communications Option (function 8, "
                      f"sub-function 1) to {where}: the device restarts its communications",
                      sub_function=sub, **info)  # fmt: skip
            return False
        if sub == 4:
            self.emit(out, MODE, rec,
                      f"{rec.src_ip} forced {where} into Listen Only Mode (Modbus function 8, "
                      "sub-function 4): it stops answering until restarted",
                      reverse=True, sub_function=sub, **info)  # fmt: skip
            return False
        return True

    # -- responses ----------------------------------------------------------------------------

    def _response(self, rec: PacketRecord, payload: bytes) -> list[Detection] | None:
        out: list[Detection] = []
        server, client = rec.src_ip, rec.dst_ip
        for unit, fc, pdu in self._frames(rec, payload, out):
            where = f"{server} (unit {unit})"
            if fc & 0x80:
                if len(pdu) < 2:
                    continue
                self._exception(rec, where, unit, fc & 0x7F, pdu[1], out)
            elif fc not in PUBLIC and fc not in USER_DEFINED and fc != 90:
                self.emit(out, RESERVED_FC, rec,
                          f"{where} answered {client} with reserved or unassigned Modbus function "
                          f"code {fc}", function_code=fc, unit_id=unit)  # fmt: skip
            elif fc == 43 and len(pdu) > 1 and pdu[1] == 0x0E:
                self._identification(rec, where, unit, payload, out)
        return out or None

    def _exception(self, rec, where, unit, request_fc, code, out) -> None:
        server, client = rec.src_ip, rec.dst_ip
        reason = EXCEPTION_NAMES.get(code, "unknown exception")
        info = {"function_code": request_fc, "exception_code": code, "unit_id": unit}
        op = f"a Modbus {function_text(request_fc)} request"
        self.emit(out, EXCEPTION, rec,
                  f"{where} answered {op} from {client} with exception {code} ({reason})",
                  **info)  # fmt: skip
        type_id = _EXCEPTION_TYPES.get(code)
        if type_id is not None:
            self.emit(out, type_id, rec,
                      f"{client} sent {op} that {where} rejected as {reason} (exception {code})",
                      reverse=True, **info)  # fmt: skip
        elif code == 4:
            self.emit(out, DEVICE_FAILURE, rec,
                      f"{where} reported an unrecoverable Server Device Failure (exception 4) "
                      f"to {op} from {client}", **info)  # fmt: skip
        if self._exceptions.violates(f"{server}>{client}:{request_fc}:{code}", rec.ts_ns):
            self.emit(out, UNAUTHORIZED_EXCEPTION, rec,
                      f"{where} raised exception {code} ({reason}) to {op} from {client}, not "
                      "seen during learning", **info)  # fmt: skip

    def _identification(self, rec, where: str, unit: int, payload: bytes, out) -> None:
        from scapy.contrib.modbus import ModbusADUResponse

        if self.ctx.identified is not None:
            self.ctx.identified("modbus", rec, payload)

        adu = self._cache.get(ModbusADUResponse, payload)
        revision = None
        layer = adu
        while layer is not None and getattr(layer, "name", None):
            if getattr(layer, "id", None) == 0x02 and hasattr(layer, "value"):
                revision = bytes(layer.value).decode("latin-1", "replace").strip()
                break
            layer = layer.payload if layer.payload else None
        if not revision:
            return
        device = f"{rec.src_ip}:{unit}"
        known = self._revisions.get(device)
        if known is None or self.ctx.learning.active:
            self._revisions[device] = revision
            self._firmware.violates(f"{device}={revision}", rec.ts_ns)  # learns if learning
        elif revision != known:
            self.emit(out, FIRMWARE, rec,
                      f"{where} now reports firmware revision {revision!r} (learned: {known!r}) "
                      f"in a Read Device Identification response to {rec.dst_ip}",
                      firmware_version=revision, previous_version=known, unit_id=unit)  # fmt: skip


def _retimed(detections: tuple[Detection, ...] | list[Detection], ts: int) -> list[Detection]:
    """``detections`` at ``ts``. A module-level function, not a comprehension in ``observe``:
    a comprehension there would make ``ts`` a closure cell, allocated on every call of
    ``observe`` (every Modbus packet), refused or not."""
    return [d._replace(ts_ns=ts) for d in detections]
