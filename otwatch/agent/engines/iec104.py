"""IEC 60870-5-104 detectors: unlearned ASDU types, illegal ASDU types, causes of
transmission, common addresses and information object addresses, and reset process commands.

APDUs (start 0x68, length, four control octets, then for I-format an ASDU) are reassembled per
flow direction. The engine needs only the ASDU header (type identification, cause of
transmission, common address), so it reads it with ``struct``: ``scapy.contrib.scada.iec104``
decodes every information object (hundreds of microseconds per APDU) and is used by the tests
to cross-check this parser on the corpus instead.

The controlling station is the client of the TCP connection (the server listens on 2404).
Sent by the controlling station:

- a type not learned for this client → server pair: *Unpermitted Usage of ASDU Types*;
- a type IEC 60870-5-101/104 does not define (0, 22-29, 41-44, 52-57, 65-69, 71-99, 108-109,
  114-119): *Slave Device Received Illegal ASDU Type*;
- a command (45-64, 100, 101, 103, 105, 107) whose cause of transmission is not activation or
  deactivation (or cause 0, "not used"): *Slave Device Received Illegal Command Cause of
  Transmission*; common address 0 ("not used"): *... Illegal Common Address*;
- C_RP_NA_1 (105, reset process): *Controller Reset*.

Sent by the controlled station, the negative causes 44 (unknown type identification), 45
(unknown cause), 46 (unknown common address) and 47 (unknown information object address) raise
the matching *Slave Device Received Illegal ...* type with the controlling station as source.
Bad APCI framing counts towards *Excessive Malformed Packets In a Single Session*.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.reassembly import FrameReader, Stream
from otwatch.agent.engines.base import EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.ot_support import (
    MALFORMED_SESSION,
    MalformedCounter,
    OtEngine,
    Policy,
    flow_state,
)

__all__ = ["ASDU_TYPES", "Config", "Iec104Engine", "frame_length"]

UNPERMITTED = "unpermitted_usage_of_asdu_types"
ILLEGAL_TYPE = "slave_device_received_illegal_asdu_type"
ILLEGAL_COT = "slave_device_received_illegal_command_cause_of_transmission"
ILLEGAL_CA = "slave_device_received_illegal_common_address"
ILLEGAL_IOA = "slave_device_received_illegal_information_object_address"
RESET = "controller_reset"

IEC104_PORT = 2404
ASDU_TYPES = {
    1: "M_SP_NA_1", 3: "M_DP_NA_1", 5: "M_ST_NA_1", 7: "M_BO_NA_1", 9: "M_ME_NA_1",
    11: "M_ME_NB_1", 13: "M_ME_NC_1", 15: "M_IT_NA_1", 20: "M_PS_NA_1", 21: "M_ME_ND_1",
    30: "M_SP_TB_1", 31: "M_DP_TB_1", 32: "M_ST_TB_1", 33: "M_BO_TB_1", 34: "M_ME_TD_1",
    35: "M_ME_TE_1", 36: "M_ME_TF_1", 37: "M_IT_TB_1", 38: "M_EP_TD_1", 39: "M_EP_TE_1",
    40: "M_EP_TF_1", 45: "C_SC_NA_1 single command", 46: "C_DC_NA_1 double command",
    47: "C_RC_NA_1 regulating step command", 48: "C_SE_NA_1 set-point (normalised)",
    49: "C_SE_NB_1 set-point (scaled)", 50: "C_SE_NC_1 set-point (float)",
    51: "C_BO_NA_1 bitstring command", 58: "C_SC_TA_1 single command with time",
    59: "C_DC_TA_1 double command with time", 60: "C_RC_TA_1 regulating step with time",
    61: "C_SE_TA_1 set-point with time", 62: "C_SE_TB_1 set-point with time",
    63: "C_SE_TC_1 set-point with time", 64: "C_BO_TA_1 bitstring with time",
    70: "M_EI_NA_1 end of initialisation", 100: "C_IC_NA_1 interrogation",
    101: "C_CI_NA_1 counter interrogation", 102: "C_RD_NA_1 read", 103: "C_CS_NA_1 clock sync",
    104: "C_TS_NA_1 test", 105: "C_RP_NA_1 reset process", 106: "C_CD_NA_1 delay acquisition",
    107: "C_TS_TA_1 test with time", 110: "P_ME_NA_1 parameter", 111: "P_ME_NB_1 parameter",
    112: "P_ME_NC_1 parameter", 113: "P_AC_NA_1 parameter activation",
}  # fmt: skip
#: Type identifications IEC 60870-5-101/104 leave undefined (128-255 are private/special use).
UNDEFINED_TYPES = frozenset(
    [0, *range(22, 30), *range(41, 45), *range(52, 58), *range(65, 70), *range(71, 100),
     108, 109, *range(114, 120)]
)  # fmt: skip
_COMMANDS = frozenset([*range(45, 65), 100, 101, 103, 105, 107])
_NEGATIVE_CAUSES = {
    44: (ILLEGAL_TYPE, "unknown type identification"),
    45: (ILLEGAL_COT, "unknown cause of transmission"),
    46: (ILLEGAL_CA, "unknown common address of ASDU"),
    47: (ILLEGAL_IOA, "unknown information object address"),
}
_U_FUNCTIONS = frozenset({0x07, 0x0B, 0x13, 0x23, 0x43, 0x83})
_le16 = struct.Struct("<H").unpack_from


def frame_length(buf: bytes, off: int) -> int | None:
    """Reassembly framing for APDUs: 2 + APDU length, None if unknown yet, 0 if not a start."""
    if buf[off] != 0x68:
        return 0
    if len(buf) - off < 2:
        return None
    length = buf[off + 1]
    return 2 + length if length >= 4 else 0


def _resync(buf: bytes, off: int) -> int:
    return buf.find(b"\x68", off)


def type_text(type_id: int) -> str:
    name = ASDU_TYPES.get(type_id)
    return f"ASDU type {type_id} ({name})" if name else f"ASDU type {type_id}"


@dataclass(frozen=True)
class Config:
    malformed: int = 2
    malformed_window_s: float = 600.0
    max_buffer: int = 4096


class _FlowState:
    __slots__ = ("streams",)

    def __init__(self) -> None:
        self.streams = (Stream(), Stream())


class Iec104Engine(OtEngine):
    name = "iec104"
    settings_class = Config
    protocol = "iec104"
    type_ids = frozenset({
        UNPERMITTED, ILLEGAL_TYPE, ILLEGAL_COT, ILLEGAL_CA, ILLEGAL_IOA, RESET, MALFORMED_SESSION,
    })  # fmt: skip
    apps = frozenset({"iec104"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx, Config)
        self.reader = FrameReader(frame_length, _resync, max_buffer=self.config.max_buffer)
        self._types = Policy(ctx, "iec104_asdu")
        self._malformed = MalformedCounter(self.config.malformed, self.config.malformed_window_s)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if not payload or rec.src_ip is None:
            return None
        st = flow_state(flow, "iec104", _FlowState)
        from_station = rec.dport == IEC104_PORT  # the controlling station is the client
        frames, garbage = self.reader.feed(st.streams[from_station], rec.tcp_seq, payload)
        out: list[Detection] = []
        for frame in frames:
            problem = self._apdu(rec, frame, from_station, out)
            if problem:
                self._bad(rec, problem, out)
        if garbage:
            self._bad(rec, f"{garbage} octets that are not APDUs", out)
        return out or None

    def _bad(self, rec: PacketRecord, problem: str, out: list[Detection]) -> None:
        if self._malformed.hit(rec, "iec104"):
            self.emit(out, MALFORMED_SESSION, rec,
                      f"{rec.src_ip} sent {self.config.malformed} or more malformed IEC 104 "
                      f"APDUs to {rec.dst_ip} within {self.config.malformed_window_s:g} s "
                      f"(last: {problem})", reason=problem)  # fmt: skip

    def _apdu(self, rec, frame: bytes, from_station: bool, out) -> str | None:
        if len(frame) < 6:
            return "APDU shorter than its control field"
        control = frame[2]
        if control & 0x01 == 0:  # I-format
            asdu = frame[6:]
            if len(asdu) < 6:
                return "I-format APDU shorter than an ASDU header"
            if from_station:
                self._from_station(rec, asdu, out)
            else:
                self._from_outstation(rec, asdu, out)
            return None
        if len(frame) != 6:
            return "S/U-format APDU with an ASDU"
        if control & 0x03 == 0x03 and control not in _U_FUNCTIONS:
            return f"unknown U-format function 0x{control:02X}"
        return None

    def _from_station(self, rec, asdu: bytes, out: list[Detection]) -> None:
        client, server = rec.src_ip, rec.dst_ip
        type_id, cot, ca = asdu[0], asdu[2] & 0x3F, _le16(asdu, 4)[0]
        what = type_text(type_id)
        info = {"asdu_type": type_id, "cause": cot, "common_address": ca}
        where = f"{server} (common address {ca})"
        if type_id in UNDEFINED_TYPES:
            self.emit(out, ILLEGAL_TYPE, rec,
                      f"{client} sent {what}, which IEC 60870-5-104 does not define, to "
                      f"{where}", **info)  # fmt: skip
        if self._types.violates(f"{client}>{server}:{type_id}", rec.ts_ns):
            self.emit(out, UNPERMITTED, rec,
                      f"{client} sent {what} (cause {cot}) to {where}, not seen during learning",
                      **info)  # fmt: skip
        if cot == 0 or (type_id in _COMMANDS and cot not in (6, 8)):
            self.emit(
                out,
                ILLEGAL_COT,
                rec,
                f"{client} sent {what} to {where} with cause of transmission {cot}; a "
                "command must be an activation (6) or deactivation (8)",
                **info,
            )
        if ca == 0:
            self.emit(out, ILLEGAL_CA, rec,
                      f"{client} sent {what} to {server} with common address 0, which is not "
                      "used", **info)  # fmt: skip
        if type_id == 105 and cot == 6:
            qualifier = asdu[9] if len(asdu) > 9 else None
            kind: dict[int | None, str] = {
                1: "general reset of process",
                2: "reset of pending time-tagged events",
            }
            self.emit(
                out,
                RESET,
                rec,
                f"{client} sent a reset process command (C_RP_NA_1, "
                f"{kind.get(qualifier, f'qualifier {qualifier}')}) to {where}",
                **info,
            )

    def _from_outstation(self, rec, asdu: bytes, out: list[Detection]) -> None:
        cot = asdu[2] & 0x3F
        spec = _NEGATIVE_CAUSES.get(cot)
        if spec is None:
            return
        type_id, ca = asdu[0], _le16(asdu, 4)[0]
        type_name, reason = spec
        self.emit(out, type_name, rec,
                  f"{rec.dst_ip} sent {type_text(type_id)} that {rec.src_ip} (common address "
                  f"{ca}) rejected with cause {cot} ({reason})",
                  reverse=True, asdu_type=type_id, cause=cot, common_address=ca)  # fmt: skip
