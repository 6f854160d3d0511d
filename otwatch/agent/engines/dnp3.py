"""DNP3 detectors: function-code policy, restarts and stops, protocol violations and the
outstation conditions its internal indications (IIN) report.

Link frames are reassembled per flow direction (they may span TCP segments, and mid-stream
starts are fine), checked (length, header and block CRCs) and their transport segments joined
into application fragments. Everything is read with ``struct`` through
``decode.layers.dnp3``'s helpers; no Scapy dissection is needed on this path.

Requests (function codes 0-33, sent by the master):

- unlearned master → outstation function code: *Unpermitted Usage of DNP3 Function Code*;
- COLD_RESTART (13): *Outstation Restarted* (also raised when a response's IIN1.7 DEVICE_RESTART
  goes from clear to set), *Outstation Restarts Frequently* (2 per outstation in 10 min),
  *Excessive Restart Rate of an Outstation* (10 restart commands per pair in 1 h);
- WARM_RESTART (14): *Controller Reset* (judgement: the spec's "reset command; controller
  restarts automatically" is what a warm restart does; cold restarts have their own type);
- STOP_APPLICATION (18): *Controller Stop*, and *Abnormal Termination of Applications* at 20
  stop commands per pair in 3 h;
- INITIALIZE_DATA (15) / SAVE_CONFIGURATION (19): the two obsolete-function-code types;
- 34-128: *Usage of a Reserved Function Code*;
- CON set in a request: *Master Requested an Application Layer Confirmation*;
- an unlearned class-0 (g60v1) READ: *Suspicion of Illegal Integrity Scan*;
- bad link frames (LENGTH, CRCs) and impossible object headers: *Illegal DNP3 Operation*, and
  *Excessive Malformed Packets In a Single Session* at 2 per pair in 10 min.

Responses (129-131, sent by the outstation) by IIN bit: 2.0 *Function Code Not Supported by
Outstation*, 2.1 *Unknown Object Sent to Outstation*, 2.2 *Incorrect Parameter Sent to
Outstation*, 2.3 *Event Buffer Overflow in Outstation* (and the *Continuous* type at 3 in
10 min), 2.5 *Outstation's Corrupted Configuration Detected*, 2.6/2.7 *Usage of Reserved
Status Flags (IIN)*, 1.6 *Suspicion of Hardware Problems in Outstation*; an unlearned IIN bit
*Unpermitted Usage of Internal Indication (IIN)*; a g120v7 error object *Master-Slave
Authentication Error*.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.layers.dnp3 import (
    APP_FUNCTIONS,
    IIN1_FLAGS,
    IIN2_FLAGS,
    TransportReassembler,
    frame_length,
    parse_frame,
    resync,
)
from otwatch.agent.decode.layers.dnp3_objects import check_objects, object_headers
from otwatch.agent.decode.reassembly import FrameReader, Stream
from otwatch.agent.engines.base import EngineContext
from otwatch.agent.engines.counters import RateCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.ot_support import (
    MALFORMED_SESSION,
    MalformedCounter,
    OtEngine,
    Policy,
    flow_state,
)

__all__ = ["Config", "Dnp3Engine"]

UNPERMITTED_FC = "unpermitted_usage_of_dnp3_function_code"
UNPERMITTED_IIN = "unpermitted_usage_of_internal_indication_iin"
INTEGRITY_SCAN = "suspicion_of_illegal_integrity_scan"
RESTARTED = "outstation_restarted"
RESTARTS_FREQUENTLY = "outstation_restarts_frequently"
RESTART_RATE = "excessive_restart_rate_of_an_outstation"
RESET = "controller_reset"
STOP = "controller_stop"
TERMINATIONS = "abnormal_termination_of_applications"
OBSOLETE_INIT = "initiation_of_an_obsolete_function_code_initialize_data"
OBSOLETE_SAVE = "initiation_of_an_obsolete_function_code_save_config"
RESERVED_FC = "usage_of_a_reserved_function_code"
CONFIRM_REQUESTED = "master_requested_an_application_layer_confirmation"
ILLEGAL = "illegal_dnp3_operation"
NOT_SUPPORTED = "function_code_not_supported_by_outstation"
UNKNOWN_OBJECT = "unknown_object_sent_to_outstation"
BAD_PARAMETER = "incorrect_parameter_sent_to_outstation"
BUFFER_OVERFLOW = "event_buffer_overflow_in_outstation"
CONTINUOUS_OVERFLOW = "continuous_event_buffer_overflow_at_outstation"
CORRUPT_CONFIG = "outstations_corrupted_configuration_detected"
RESERVED_IIN = "usage_of_reserved_status_flags_iin"
HARDWARE = "suspicion_of_hardware_problems_in_outstation"
AUTH_ERROR = "master_slave_authentication_error"

#: IIN bit (IIN1 bits 0-7, IIN2 bits 8-15) → (type, reverse roles, what the outstation said).
_IIN_TYPES = {
    6: (HARDWARE, False, "reported device trouble (IIN1.6)"),
    8: (NOT_SUPPORTED, True, "does not support the requested function code (IIN2.0)"),
    9: (UNKNOWN_OBJECT, True, "does not know a requested object (IIN2.1)"),
    10: (BAD_PARAMETER, True, "reported a parameter error in the request (IIN2.2)"),
    11: (BUFFER_OVERFLOW, False, "reported an event buffer overflow (IIN2.3)"),
    13: (CORRUPT_CONFIG, False, "reported a corrupt configuration (IIN2.5)"),
}
_IIN_NAMES = [f"IIN1.{i} {n}" for i, n in enumerate(IIN1_FLAGS)] + [
    f"IIN2.{i} {n}" for i, n in enumerate(IIN2_FLAGS)
]


@dataclass(frozen=True)
class Config:
    frequent_restarts: int = 2
    """Cold restarts of one outstation within ``frequent_restarts_window_s`` (spec 2/10 min)."""
    frequent_restarts_window_s: float = 600.0
    restart_rate: int = 10
    """Restart commands between one master and outstation in ``restart_rate_window_s``."""
    restart_rate_window_s: float = 3600.0
    terminations: int = 20
    """STOP_APPLICATION commands per pair within ``terminations_window_s`` (spec 20/3 h)."""
    terminations_window_s: float = 10_800.0
    buffer_overflows: int = 3
    """Responses reporting IIN2.3 per outstation within ``buffer_overflow_window_s``."""
    buffer_overflow_window_s: float = 600.0
    malformed: int = 2
    """Malformed frames per pair within ``malformed_window_s`` (spec 2/10 min)."""
    malformed_window_s: float = 600.0
    max_buffer: int = 16_384
    """Bytes of an incomplete link frame kept per flow direction."""


class _FlowState:
    __slots__ = ("iin_restart", "streams", "transports")

    def __init__(self) -> None:
        self.streams = (Stream(), Stream())
        self.transports: dict[tuple[bool, int, int], TransportReassembler] = {}
        self.iin_restart: dict[int, bool] = {}


class Dnp3Engine(OtEngine):
    name = "dnp3"
    settings_class = Config
    protocol = "dnp3"
    type_ids = frozenset({
        UNPERMITTED_FC, UNPERMITTED_IIN, INTEGRITY_SCAN, RESTARTED, RESTARTS_FREQUENTLY,
        RESTART_RATE, RESET, STOP, TERMINATIONS, OBSOLETE_INIT, OBSOLETE_SAVE, RESERVED_FC,
        CONFIRM_REQUESTED, ILLEGAL, NOT_SUPPORTED, UNKNOWN_OBJECT, BAD_PARAMETER,
        BUFFER_OVERFLOW, CONTINUOUS_OVERFLOW, CORRUPT_CONFIG, RESERVED_IIN, HARDWARE,
        AUTH_ERROR, MALFORMED_SESSION,
    })  # fmt: skip
    apps = frozenset({"dnp3"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx, Config)
        c = self.config
        self.reader = FrameReader(frame_length, resync, max_buffer=c.max_buffer)
        self._fc = Policy(ctx, "dnp3_fc")
        self._iin = Policy(ctx, "dnp3_iin")
        self._integrity = Policy(ctx, "dnp3_integrity")
        keys = 50_000
        self._frequent = RateCounter(
            c.frequent_restarts, int(c.frequent_restarts_window_s * 1e9), keys
        )
        self._rate = RateCounter(c.restart_rate, int(c.restart_rate_window_s * 1e9), keys)
        self._stops = RateCounter(c.terminations, int(c.terminations_window_s * 1e9), keys)
        self._overflows = RateCounter(
            c.buffer_overflows, int(c.buffer_overflow_window_s * 1e9), keys
        )
        self._malformed = MalformedCounter(c.malformed, c.malformed_window_s)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if not payload or rec.src_ip is None:
            return None
        st = flow_state(flow, "dnp3", _FlowState)
        from_client = flow.from_client(rec.src_ip, rec.sport or 0) if flow else True
        if rec.ip_proto == 6:
            frames, garbage = self.reader.feed(st.streams[from_client], rec.tcp_seq, payload)
        else:
            frames, garbage = self.reader.feed(Stream(), None, payload)
            garbage = garbage or (len(payload) if not frames else 0)
        out: list[Detection] = []
        for frame in frames:
            link = parse_frame(frame)
            if isinstance(link, str):
                self._illegal(rec, link, out)
                continue
            if not link.carries_user_data:
                continue
            key = (from_client, link.source, link.destination)
            transport = st.transports.get(key)
            if transport is None:
                if len(st.transports) >= 64:
                    st.transports.clear()
                st.transports[key] = transport = TransportReassembler()
            fragment = transport.feed(link.user_data)
            if fragment is None:
                continue
            if len(fragment) < 2:
                self._illegal(rec, "application fragment shorter than its header", out)
            elif fragment[1] in (129, 130, 131):
                self._response(rec, link.source, fragment, st, out)
            else:
                self._request(rec, link.destination, fragment, out)
        if garbage:
            self._illegal(rec, f"{garbage} bytes that are not DNP3 link frames", out)
        return out or None

    # -- helpers ------------------------------------------------------------------------------

    def _illegal(self, rec: PacketRecord, reason: str, out: list[Detection]) -> None:
        self.emit(out, ILLEGAL, rec,
                   f"{rec.src_ip} sent a malformed DNP3 message to {rec.dst_ip}: {reason}",
                   reason=reason)  # fmt: skip
        if self._malformed.hit(rec, "dnp3"):
            self.emit(
                out,
                MALFORMED_SESSION,
                rec,
                f"{rec.src_ip} sent {self.config.malformed} or more malformed DNP3 "
                f"messages to {rec.dst_ip} within {self.config.malformed_window_s:g} s",
            )

    # -- requests -----------------------------------------------------------------------------

    def _request(self, rec: PacketRecord, address: int, frag: bytes, out: list[Detection]):
        master, outstation, ts = rec.src_ip, rec.dst_ip, rec.ts_ns
        control, fc = frag[0], frag[1]
        name = APP_FUNCTIONS.get(fc)
        where = f"outstation {outstation} (link address {address})"
        info: dict[str, Any] = {"function_code": fc, "link_address": address}
        if name is None:
            self.emit(
                out,
                RESERVED_FC,
                rec,
                f"{master} sent reserved DNP3 function code {fc} to {where}",
                **info,
            )
            return
        op = f"DNP3 {name} (function {fc})"
        info["function"] = name
        reason = check_objects(fc, frag[2:])
        if reason:
            self._illegal(rec, f"{op} with {reason}", out)
        if control & 0x20 and fc != 0:
            self.emit(
                out,
                CONFIRM_REQUESTED,
                rec,
                f"{master} requested an application-layer confirmation in a {op} "
                f"request to {where}; only outstations may request one",
                **info,
            )
        if self._fc.violates(f"{master}>{outstation}:{fc}", ts):
            self.emit(
                out,
                UNPERMITTED_FC,
                rec,
                f"{master} sent {op} to {where}, not seen during learning",
                **info,
            )
        if fc == 13:
            self.emit(
                out,
                RESTARTED,
                rec,
                f"{master} sent a DNP3 Cold Restart (function 13) to {where}",
                reverse=True,
                **info,
            )
            if self._frequent.hit(outstation, ts):
                self.emit(
                    out,
                    RESTARTS_FREQUENTLY,
                    rec,
                    f"{where} was sent {self.config.frequent_restarts} cold restarts "
                    f"within {self.config.frequent_restarts_window_s:g} s (last from "
                    f"{master})",
                    reverse=True,
                    **info,
                )
        if fc in (13, 14) and self._rate.hit((master, outstation), ts):
            self.emit(
                out,
                RESTART_RATE,
                rec,
                f"{master} sent {self.config.restart_rate} restart commands to {where} "
                f"within {self.config.restart_rate_window_s:g} s",
                **info,
            )
        if fc == 14:
            self.emit(
                out,
                RESET,
                rec,
                f"{master} sent a DNP3 Warm Restart (function 14) to {where}",
                **info,
            )
        elif fc == 18:
            self.emit(
                out,
                STOP,
                rec,
                f"{master} sent a DNP3 Stop Application (function 18) to {where}",
                **info,
            )
            if self._stops.hit((master, outstation), ts):
                self.emit(
                    out,
                    TERMINATIONS,
                    rec,
                    f"{master} sent {self.config.terminations} Stop Application "
                    f"commands to {where} within {self.config.terminations_window_s:g} s",
                    **info,
                )
        elif fc == 15:
            self.emit(
                out,
                OBSOLETE_INIT,
                rec,
                f"{master} sent the obsolete DNP3 Initialize Data (function 15) to {where}",
                **info,
            )
        elif fc == 19:
            self.emit(
                out,
                OBSOLETE_SAVE,
                rec,
                f"{master} sent the obsolete DNP3 Save Configuration (function 19) to {where}",
                **info,
            )
        elif (
            fc == 1
            and any(g == 60 and v == 1 for g, v, _q in object_headers(frag[2:]))
            and self._integrity.violates(f"{master}>{outstation}", ts)
        ):
            self.emit(out, INTEGRITY_SCAN, rec,
                       f"{master} ran an integrity scan (class 0 READ, g60v1) of {where}, "
                       "not seen during learning", **info)  # fmt: skip

    # -- responses ----------------------------------------------------------------------------

    def _response(self, rec, address: int, frag: bytes, st: _FlowState, out: list[Detection]):
        if len(frag) < 4:
            self._illegal(rec, "response without its internal indications", out)
            return
        outstation, master, ts = rec.src_ip, rec.dst_ip, rec.ts_ns
        iin = frag[2] | frag[3] << 8
        where = f"outstation {outstation} (link address {address})"
        info: dict[str, Any] = {"link_address": address, "iin": f"0x{frag[2]:02x}{frag[3]:02x}"}
        restart = bool(iin & 0x80)
        was = st.iin_restart.get(address)
        st.iin_restart[address] = restart
        if restart and was is False:
            self.emit(out, RESTARTED, rec,
                       f"{where} restarted: its IIN1.7 DEVICE_RESTART flag was set in a response "
                       f"to {master}", **info)  # fmt: skip
        headers = object_headers(frag[4:], limit=1)
        if headers and headers[0][:2] == (120, 7):
            self.emit(out, AUTH_ERROR, rec,
                      f"{where} returned a DNP3 Secure Authentication error (g120v7) to "
                      f"{master}", **info)  # fmt: skip
        if not iin:
            return
        for bit in range(16):
            if not iin & (1 << bit):
                continue
            label = _IIN_NAMES[bit]
            if self._iin.violates(f"{outstation}>{master}:{bit}", ts):
                self.emit(
                    out,
                    UNPERMITTED_IIN,
                    rec,
                    f"{where} reported {label} to {master}, not seen during learning",
                    indication=label,
                    **info,
                )
            if bit in (14, 15):
                self.emit(
                    out,
                    RESERVED_IIN,
                    rec,
                    f"{where} set reserved internal indication {label} in a response to {master}",
                    indication=label,
                    **info,
                )
                continue
            spec = _IIN_TYPES.get(bit)
            if spec is None:
                continue
            type_id, reverse, text = spec
            if reverse:
                message = f"{master} sent a request that {where} rejected: it {text}"
            else:
                message = f"{where} {text} in a response to {master}"
            self.emit(out, type_id, rec, message, reverse=reverse, indication=label, **info)
            if type_id == BUFFER_OVERFLOW and self._overflows.hit(outstation, ts):
                self.emit(
                    out,
                    CONTINUOUS_OVERFLOW,
                    rec,
                    f"{where} reported event buffer overflows "
                    f"{self.config.buffer_overflows} times within "
                    f"{self.config.buffer_overflow_window_s:g} s",
                    **info,
                )
