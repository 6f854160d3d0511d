"""Siemens S7comm detectors: PLC stop, programming, program upload, configuration reads and
writes, unlearned functions and data blocks, operating-mode changes.

TPKT packets are reassembled per flow direction (captures that start mid-stream work); COTP
data TPDUs whose payload starts with protocol id 0x32 are S7comm (S7comm-plus and MMS on port
102 are ignored). Headers, read/write var items and userdata parameters are read with
``struct``; the rare jobs whose detail matters (block download/upload, PI services, PLC stop)
are dissected with the ``decode.layers.s7comm`` Scapy layer, through a cache.

Roles come from the port: the PLC is the port-102 side. Policy alerts name the engineering or
HMI station as the source and the PLC as the destination whichever of them sent the packet
(in a download the PLC sends the *Download block* jobs), so one session makes one alert.

- PLC Stop job (0x29): *An S7 Stop PLC Command was Sent*.
- Request download / download block / download ended (0x1A-0x1C), PI services _INSE/_DELE:
  *Unauthorized PLC Programming* unless the station programmed this PLC during learning.
- Start upload / upload / end upload (0x1D-0x1F): *Unauthorized PLC Program Upload*.
- PI services _MODU (copy RAM to ROM) and _GARB (compress memory), userdata Set clock:
  *Unauthorized PLC Configuration Write*; userdata Read SZL and block functions (list blocks,
  block info): *Unauthorized PLC Configuration Read*.
- Other jobs (setup, read/write var, other PI services): *Unauthorized Siemens S7 Execution of
  Control Function*; other userdata functions (PLC password, cyclic data, programmer
  commands...): *Unauthorized Siemens S7 Execution of User Defined Function* (judgement: the
  spec does not define the split; userdata is S7's "user data" function class).
- Read/write var items in a data block not accessed during learning: *Unauthorized Access to
  Siemens S7 Data Block*.
- A mode-transition push from the PLC, or a PI-Service P_PROGRAM (PLC start) request:
  *PLC Operating Mode Changed* (the PLC is the source).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.layers.cache import DissectCache
from otwatch.agent.decode.layers.s7comm import (
    FUNCTIONS,
    S7,
    S7_PORT,
    USERDATA_GROUPS,
    USERDATA_SUBFUNCTIONS,
    block_name,
    frame_length,
    resync,
)
from otwatch.agent.decode.reassembly import FrameReader, Stream
from otwatch.agent.engines.base import EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.ot_support import OtEngine, Policy, flow_state

__all__ = ["Config", "S7Engine"]

STOP = "an_s7_stop_plc_command_was_sent"
PROGRAMMING = "unauthorized_plc_programming"
UPLOAD = "unauthorized_plc_program_upload"
CONFIG_READ = "unauthorized_plc_configuration_read"
CONFIG_WRITE = "unauthorized_plc_configuration_write"
CONTROL_FUNCTION = "unauthorized_siemens_s7_execution_of_control_function"
USER_FUNCTION = "unauthorized_siemens_s7_execution_of_user_defined_function"
DATA_BLOCK = "unauthorized_access_to_siemens_s7_data_block"
MODE = "plc_operating_mode_changed"

PI_SERVICES = {
    "_INSE": "activate (insert) block",
    "_DELE": "delete block",
    "_MODU": "copy RAM to ROM",
    "_GARB": "compress memory",
    "P_PROGRAM": "start the PLC",
}
_PROGRAMMING_PI = frozenset({"_INSE", "_DELE"})
_CONFIG_WRITE_PI = frozenset({"_MODU", "_GARB"})
_DEEP_JOBS = frozenset({0x1A, 0x1B, 0x1C, 0x1D, 0x28, 0x29})
_u16 = struct.Struct(">H").unpack_from


@dataclass(frozen=True)
class Config:
    max_buffer: int = 65_536
    """Bytes of an incomplete TPKT packet kept per flow direction."""


def _db_numbers(param: bytes) -> list[int]:
    """Data block numbers addressed by a read/write var request's items."""
    out: list[int] = []
    if len(param) < 2:
        return out
    pos, size = 2, len(param)
    for _ in range(param[1]):
        if pos + 3 > size or param[pos] != 0x12:
            break
        length = param[pos + 1]
        syntax = param[pos + 2]
        if syntax == 0x10 and length >= 10 and pos + 12 <= size:  # S7ANY
            if param[pos + 8] in (0x84, 0x85):
                out.append(_u16(param, pos + 6)[0])
        elif syntax == 0xB0 and pos + 4 <= size:  # DBREAD: subitems of (length, db, start)
            sub = pos + 4
            for _ in range(param[pos + 3]):
                if sub + 5 > size:
                    break
                out.append(_u16(param, sub + 1)[0])
                sub += 5
        pos += 2 + length
    return out


class _FlowState:
    __slots__ = ("streams",)

    def __init__(self) -> None:
        self.streams = (Stream(), Stream())


class S7Engine(OtEngine):
    name = "s7"
    settings_class = Config
    protocol = "s7comm"
    type_ids = frozenset({
        STOP, PROGRAMMING, UPLOAD, CONFIG_READ, CONFIG_WRITE, CONTROL_FUNCTION, USER_FUNCTION,
        DATA_BLOCK, MODE,
    })  # fmt: skip
    apps = frozenset({"s7comm"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx, Config)
        self.reader = FrameReader(frame_length, resync, max_buffer=self.config.max_buffer)
        self._programming = Policy(ctx, "s7_programming")
        self._upload = Policy(ctx, "s7_upload")
        self._config_read = Policy(ctx, "s7_config_read")
        self._config_write = Policy(ctx, "s7_config_write")
        self._function = Policy(ctx, "s7_function")
        self._userdata = Policy(ctx, "s7_userdata")
        self._db = Policy(ctx, "s7_db")
        self._cache = DissectCache(512)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if not payload or rec.src_ip is None:
            return None
        st = flow_state(flow, "s7", _FlowState)
        from_plc = rec.sport == S7_PORT
        frames, _garbage = self.reader.feed(st.streams[from_plc], rec.tcp_seq, payload)
        out: list[Detection] = []
        for frame in frames:
            if len(frame) < 7 or frame[5] != 0xF0:
                continue  # not a COTP data TPDU
            off = 5 + frame[4]
            if len(frame) < off + 10 or frame[off] != 0x32:
                continue  # S7comm-plus, MMS or a truncated header
            self._pdu(rec, frame[off:], from_plc, out)
        return out or None

    def _pdu(self, rec: PacketRecord, pdu: bytes, from_plc: bool, out: list[Detection]) -> None:
        rosctr = pdu[1]
        header = 12 if rosctr in (2, 3) else 10
        plen = _u16(pdu, 6)[0]
        param = pdu[header : header + plen]
        if not param:
            return
        src, dst = rec.src_ip, rec.dst_ip
        assert src is not None and dst is not None  # a TCP stream implies an IP header
        station, plc = (dst, src) if from_plc else (src, dst)
        ctx = _Ctx(self, rec, out, station, plc, from_plc)
        if rosctr == 1:
            self._job(ctx, pdu, param)
        elif rosctr == 7 and len(param) >= 8 and param[:3] == b"\x00\x01\x12":
            self._user_pdu(ctx, pdu, header + plen, param)

    # -- jobs ---------------------------------------------------------------------------------

    def _job(self, c: _Ctx, pdu: bytes, param: bytes) -> None:
        fn = param[0]
        fname = FUNCTIONS.get(fn, f"function 0x{fn:02X}")
        op = f"S7 {fname} (function 0x{fn:02X})"
        packet = self._cache.get(S7, pdu) if fn in _DEEP_JOBS else None
        detail = packet.parameter if packet is not None else None
        if fn == 0x29:
            service = _text(getattr(detail, "service_name", b""))
            c.emit(
                STOP,
                f"{c.station} sent an S7 PLC Stop (function 0x29"
                f"{', ' + service if service else ''}) to PLC {c.plc}",
            )
        elif fn in (0x1A, 0x1B, 0x1C):
            block = _block(detail)
            if self._programming.violates(c.pair, c.ts):
                c.emit(
                    PROGRAMMING,
                    f"{c.station} programmed PLC {c.plc}: {op}"
                    f"{' of block ' + block if block else ''}; this station did "
                    "not program the PLC during learning",
                    block=block,
                )
        elif fn in (0x1D, 0x1E, 0x1F):
            block = _block(detail)
            if self._upload.violates(c.pair, c.ts):
                c.emit(
                    UPLOAD,
                    f"{c.station} uploaded the program of PLC {c.plc}: {op}"
                    f"{' of block ' + block if block else ''}, not seen during "
                    "learning",
                    block=block,
                )
        elif fn == 0x28:
            self._pi_service(c, detail)
        else:
            if self._function.violates(f"{c.pair}:{fn}", c.ts):
                c.emit(
                    CONTROL_FUNCTION,
                    f"{c.station} used {op} on PLC {c.plc}, not seen during learning",
                    function_code=fn,
                )
            if fn in (0x04, 0x05):
                verb = "read" if fn == 0x04 else "wrote"
                for db in dict.fromkeys(_db_numbers(param)):
                    if self._db.violates(f"{c.pair}:{db}", c.ts):
                        c.emit(
                            DATA_BLOCK,
                            f"{c.station} {verb} data block DB{db} of PLC {c.plc} "
                            f"({op}), not accessed during learning",
                            function_code=fn,
                            data_block=db,
                        )

    def _pi_service(self, c: _Ctx, detail) -> None:
        service = _text(getattr(detail, "service_name", b""))
        meaning = PI_SERVICES.get(service, "program invocation")
        what = f"S7 PI-Service {service or '?'} ({meaning})"
        if service in _PROGRAMMING_PI:
            block = _block_from_pi(getattr(detail, "parameter_block", b""))
            if self._programming.violates(c.pair, c.ts):
                c.emit(
                    PROGRAMMING,
                    f"{c.station} programmed PLC {c.plc}: {what}"
                    f"{' of block ' + block if block else ''}; this station did "
                    "not program the PLC during learning",
                    block=block,
                )
        elif service in _CONFIG_WRITE_PI:
            if self._config_write.violates(c.pair, c.ts):
                c.emit(
                    CONFIG_WRITE,
                    f"{c.station} changed the configuration of PLC {c.plc}: "
                    f"{what}, not seen during learning",
                    service=service,
                )
        elif service == "P_PROGRAM":
            c.emit(
                MODE,
                f"{c.station} requested a start of PLC {c.plc} ({what})",
                plc_source=True,
                service=service,
            )
        elif self._function.violates(f"{c.pair}:PI:{service}", c.ts):
            c.emit(
                CONTROL_FUNCTION,
                f"{c.station} invoked {what} on PLC {c.plc}, not seen during learning",
                service=service,
            )

    # -- userdata -----------------------------------------------------------------------------

    def _user_pdu(self, c: _Ctx, pdu: bytes, data_at: int, param: bytes) -> None:
        kind, group, sub = param[5] >> 4, param[5] & 0x0F, param[6]
        label = (
            f"{USERDATA_GROUPS.get(group, f'group {group}')} / "
            f"{USERDATA_SUBFUNCTIONS.get((group, sub), f'subfunction {sub}')}"
        )
        if kind == 0 and group == 0 and c.from_plc:
            mode = USERDATA_SUBFUNCTIONS.get((0, sub), f"mode {sub}")
            c.emit(
                MODE,
                f"PLC {c.plc} reported a change of operating mode to {mode} (S7 "
                f"mode-transition message to {c.station})",
                plc_source=True,
                mode=mode,
            )
            return
        if kind != 4 or c.from_plc:
            return  # responses and pushes
        what = f"S7 userdata {label}"
        if group == 3 or (group == 4 and sub == 1):
            data = pdu[data_at:]
            if group == 4 and len(data) >= 6:
                what += f" (SZL id 0x{_u16(data, 4)[0]:04X})"
            if self._config_read.violates(c.pair, c.ts):
                c.emit(
                    CONFIG_READ,
                    f"{c.station} read the configuration of PLC {c.plc}: "
                    f"{what}, not seen during learning",
                )
        elif group == 7 and sub in (2, 4):
            if self._config_write.violates(c.pair, c.ts):
                c.emit(
                    CONFIG_WRITE,
                    f"{c.station} set the clock of PLC {c.plc} ({what}), not seen during learning",
                )
        elif self._userdata.violates(f"{c.pair}:{group}:{sub}", c.ts):
            c.emit(
                USER_FUNCTION,
                f"{c.station} used {what} on PLC {c.plc}, not seen during learning",
                function_group=group,
                subfunction=sub,
            )


class _Ctx:
    """The packet being judged and its roles, with a short ``emit``."""

    __slots__ = ("engine", "from_plc", "out", "pair", "plc", "rec", "station", "ts")

    def __init__(self, engine: S7Engine, rec, out, station: str, plc: str, from_plc: bool):
        self.engine, self.rec, self.out = engine, rec, out
        self.station, self.plc, self.from_plc = station, plc, from_plc
        self.pair = f"{station}>{plc}"
        self.ts = rec.ts_ns

    def emit(self, type_id: str, message: str, *, plc_source: bool = False, **extra) -> None:
        """Station → PLC whichever of them sent the packet (PLC → station with
        ``plc_source``)."""
        swap = self.from_plc != plc_source
        self.engine.emit(self.out, type_id, self.rec, message, reverse=swap, **extra)


def _text(raw) -> str:
    return bytes(raw or b"").decode("latin-1", "replace").strip("\x00 ")


def _block(detail) -> str | None:
    filename = getattr(detail, "filename", None)
    return block_name(filename) if filename else None


def _block_from_pi(parameter_block: bytes) -> str | None:
    """The PI parameter block of _INSE/_DELE: count, unknown, then ``0800001P`` names."""
    raw = bytes(parameter_block or b"")
    return block_name(b"_" + raw[2:10]) if len(raw) >= 10 else None
