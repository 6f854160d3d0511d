"""PROFINET detectors: unlearned real-time frame types, DCP configuration changes, factory
resets and failed DCP commands.

PROFINET is Layer 2 (ethertype 0x8892), so this engine sees every packet and returns at once
for other ethertypes; devices are identified by MAC address (the alert's address fields hold
MACs). The frame ID says the frame type. DCP PDUs are read with ``struct``:
``scapy.contrib.pnio_dcp`` decodes the corpus correctly but reads only the first block of a
Set request (real tools send start-transaction, value and end-transaction blocks together),
so the engine walks the blocks itself; the tests cross-check both on the corpus.

- A frame type (RT class 1/2/3 cyclic, RT_CLASS_UDP, alarms, DCP service, PTCP...) not learned
  between two MACs: *Unauthorized Profinet Frame Type* (policy).
- A DCP Set of the IP parameters, the name of station or DHCP options: *Change of Device
  Configuration* (judgement: the spec's CFG trigger; the device's address or name changes).
- A DCP Set with Control / Reset Factory Settings or Reset to Factory: *Profinet Device
  Factory Reset*.
- A DCP response "request not supported", or a Control/Response block with an error:
  *Profinet DCP Command Failed* (the device is the source).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import EVENT_L2, EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text
from otwatch.agent.engines.ot_support import OtEngine, Policy

__all__ = ["Config", "ProfinetEngine", "dcp_blocks", "frame_class"]

FRAME_TYPE = "unauthorized_profinet_frame_type"
CONFIG_CHANGE = "change_of_device_configuration"
FACTORY_RESET = "profinet_device_factory_reset"
DCP_FAILED = "profinet_dcp_command_failed"

ETHERTYPE_PROFINET = 0x8892
DCP_SERVICES = {3: "Get", 4: "Set", 5: "Identify", 6: "Hello"}
DCP_ERRORS = {
    1: "option not supported",
    2: "suboption not supported or no dataset available",
    3: "suboption not set",
    4: "resource error",
    5: "SET not possible by local reasons",
    6: "in operation, SET not possible",
}
_u16 = struct.Struct(">H").unpack_from
_CONFIG_BLOCKS = {(1, 1): "MAC address", (1, 2): "IP parameters", (1, 3): "full IP suite",
                  (2, 2): "name of station", (2, 7): "alias name"}  # fmt: skip


def frame_class(frame_id: int) -> str:
    """The frame type a PROFINET frame ID designates (IEC 61158-6-10)."""
    if frame_id <= 0x00FF:
        return "PTCP RTSync"
    if frame_id <= 0x7FFF:
        return "RT_CLASS_3 cyclic"
    if frame_id <= 0xBFFF:
        return "RT_CLASS_1/2 cyclic"
    if frame_id <= 0xFBFF:
        return "RT_CLASS_UDP cyclic"
    named = {0xFC01: "alarm high", 0xFE01: "alarm low", 0xFEFC: "DCP Hello",
             0xFEFD: "DCP Get/Set", 0xFEFE: "DCP Identify request",
             0xFEFF: "DCP Identify response"}  # fmt: skip
    if frame_id in named:
        return named[frame_id]
    if 0xFF00 <= frame_id <= 0xFF7F:
        return "PTCP"
    if 0xFF80 <= frame_id <= 0xFF8F:
        return "fragmentation"
    return f"reserved frame ID 0x{frame_id:04X}"


def dcp_blocks(payload: bytes) -> list[tuple[int, int, bytes]]:
    """``(option, suboption, data)`` of each block of a DCP PDU (``payload`` starts at the
    frame ID); stops at a block that overruns the PDU."""
    if len(payload) < 12:
        return []
    end = min(len(payload), 12 + _u16(payload, 10)[0])
    out: list[tuple[int, int, bytes]] = []
    pos = 12
    while pos + 4 <= end and len(out) < 32:
        option, suboption, length = payload[pos], payload[pos + 1], _u16(payload, pos + 2)[0]
        if pos + 4 + length > end:
            break
        out.append((option, suboption, payload[pos + 4 : pos + 4 + length]))
        pos += 4 + length + (length & 1)
    return out


@dataclass(frozen=True)
class Config:
    report_interval_s: float = 1.0
    """Repeat a frame-type detection for the same MACs and frame type at most this often
    (cyclic frames arrive every few milliseconds)."""


class ProfinetEngine(OtEngine):
    name = "profinet"
    settings_class = Config
    protocol = "profinet"
    type_ids = frozenset({FRAME_TYPE, CONFIG_CHANGE, FACTORY_RESET, DCP_FAILED})
    apps = frozenset({EVENT_L2})  # frames without IP: PROFINET has its own ethertype

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx, Config)
        self._frames = Policy(ctx, "profinet_frame")
        self._checked: set[tuple[bytes | None, bytes | None, str]] = set()
        self._reported: dict[tuple[bytes | None, bytes | None, str], int] = {}
        self._interval_ns = int(self.config.report_interval_s * 1e9)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.ethertype != ETHERTYPE_PROFINET:
            return None
        payload = rec.payload
        if len(payload) < 2:
            return None
        out: list[Detection] = []
        frame_id = _u16(payload, 0)[0]
        kind = frame_class(frame_id)
        seen = (rec.src_mac, rec.dst_mac, kind)
        last = self._reported.get(seen)
        if seen not in self._checked and (last is None or rec.ts_ns - last >= self._interval_ns):
            src, dst = mac_text(rec.src_mac), mac_text(rec.dst_mac)
            if self._frames.violates(f"{src}>{dst}:{kind}", rec.ts_ns):
                if len(self._reported) >= 100_000:
                    self._reported.clear()
                self._reported[seen] = rec.ts_ns
                self._emit(out, FRAME_TYPE, rec,
                           f"{src} sent PROFINET {kind} frames (frame ID 0x{frame_id:04X}) to "
                           f"{dst}, not seen during learning", frame_id=frame_id)  # fmt: skip
            else:
                if len(self._checked) >= 100_000:
                    self._checked.clear()
                self._checked.add(seen)
        if 0xFEFC <= frame_id <= 0xFEFF and len(payload) >= 12:
            self._dcp(rec, payload, out)
        return out or None

    def _emit(self, out, type_id: str, rec: PacketRecord, message: str, *,
              reverse: bool = False, **extra) -> None:  # fmt: skip
        src, dst = mac_text(rec.src_mac), mac_text(rec.dst_mac)
        if reverse:
            src, dst = dst, src
        self.emit(out, type_id, rec, message, source_address=src, destination_address=dst,
                  source_mac=src, destination_mac=dst, **extra)  # fmt: skip

    def _dcp(self, rec: PacketRecord, payload: bytes, out: list[Detection]) -> None:
        service, service_type = payload[2], payload[3]
        name = DCP_SERVICES.get(service, f"service {service}")
        src, dst = mac_text(rec.src_mac), mac_text(rec.dst_mac)
        if service_type == 5:
            self._emit(out, DCP_FAILED, rec,
                       f"{src} answered a PROFINET DCP {name} request from {dst}: request not "
                       "supported", service=service)  # fmt: skip
            return
        blocks = dcp_blocks(payload)
        if service_type == 1:
            for option, suboption, data in blocks:
                if (option, suboption) == (5, 4) and len(data) >= 3 and data[2]:
                    error = DCP_ERRORS.get(data[2], f"error {data[2]}")
                    self._emit(out, DCP_FAILED, rec,
                               f"{src} refused PROFINET DCP {name} of option {data[0]}/"
                               f"{data[1]} from {dst}: {error}", service=service,
                               error=data[2])  # fmt: skip
            return
        if service != 4 or service_type != 0:
            return
        for option, suboption, data in blocks:
            value = data[2:]  # after the block qualifier
            if option == 5 and suboption in (5, 6):
                self._emit(out, FACTORY_RESET, rec,
                           f"{src} sent a PROFINET DCP Set Reset to Factory (option 5/"
                           f"{suboption}) to {dst}: the device returns to factory settings",
                           option=option, suboption=suboption)  # fmt: skip
            elif (option, suboption) in _CONFIG_BLOCKS or option == 3:
                what = _CONFIG_BLOCKS.get((option, suboption), f"DHCP option {suboption}")
                if option == 1 and suboption in (2, 3) and len(value) >= 12:
                    ip, mask, gw = (socket.inet_ntoa(value[i : i + 4]) for i in (0, 4, 8))
                    detail = f"to {ip}/{mask} gateway {gw}"
                elif option == 2:
                    detail = f"to {value.decode('latin-1', 'replace')!r}"
                else:
                    detail = f"({value.hex()})"
                permanent = len(data) >= 2 and data[1] & 1
                self._emit(out, CONFIG_CHANGE, rec,
                           f"{src} set the {what} of PROFINET device {dst} {detail} (DCP Set"
                           f"{', stored permanently' if permanent else ''})",
                           option=option, suboption=suboption)  # fmt: skip
