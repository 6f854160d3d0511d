"""BACnet/IP detectors: device reinitialisation, unlearned object access and routes, illegal
messages, protocol version, and failed services.

BVLC, NPDU and APDU headers are read with ``struct`` (``decode.layers.bacnet`` helpers); the
rare ReinitializeDevice requests are dissected with the Scapy layer (cached) for their state
and password. BACnet over 802.2 LLC (no IP) is not inspected: engines see TCP/UDP traffic.

- ReinitializeDevice (confirmed service 20) with state coldstart or warmstart:
  *Controller Reset* (the device restarts).
- A confirmed request not learned for this client → server pair, keyed by service and, where
  the service names one, the object (ReadProperty, WriteProperty, AtomicWriteFile...):
  *Unauthorized BACNet Object Access*.
- A routed NPDU (destination or source network present) or a network-layer message not learned
  for this pair: *Unauthorized BACNet Route*.
- BVLC length different from the datagram, reserved BVLC function or NPDU control bits, a
  missing or truncated APDU, reserved APDU types, unknown service choices: *Illegal BACNet
  message* (and *Excessive Malformed Packets In a Single Session* at 2 per pair in 10 min);
  an NPDU version other than 1: *Illegal Protocol Version*.
- Error, Reject or Abort PDUs and BVLC-Result NAKs: *BACNet Operation Failed* (the device that
  reports the failure is the source).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.layers.bacnet import (
    BACnetAPDU,
    ReinitializeDeviceRequest,
    error_class_code,
    object_identifier,
    parse_tag,
)
from otwatch.agent.decode.layers.bacnet_codes import (
    ABORT_REASONS,
    BVLC_FUNCTIONS,
    CONFIRMED_SERVICES,
    ERROR_CLASSES,
    ERROR_CODES,
    NETWORK_MESSAGES,
    NPDU_FUNCTIONS,
    OBJECT_TYPES,
    REINITIALIZED_STATES,
    REJECT_REASONS,
    UNCONFIRMED_SERVICES,
)
from otwatch.agent.decode.layers.cache import DissectCache
from otwatch.agent.engines.base import EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.ot_support import (
    MALFORMED_SESSION,
    MalformedCounter,
    OtEngine,
    Policy,
)

__all__ = ["BacnetEngine", "Config"]

RESET = "controller_reset"
OBJECT_ACCESS = "unauthorized_bacnet_object_access"
ROUTE = "unauthorized_bacnet_route"
ILLEGAL = "illegal_bacnet_message"
PROTOCOL_VERSION = "illegal_protocol_version"
FAILED = "bacnet_operation_failed"

#: Confirmed services whose first parameter is the object they act on (context tag 0).
_OBJECT_SERVICES = frozenset({5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 26, 27, 28})
_u16 = struct.Struct(">H").unpack_from


@dataclass(frozen=True)
class Config:
    malformed: int = 2
    malformed_window_s: float = 600.0


def _object_text(value: int) -> str:
    kind, instance = object_identifier(value)
    return f"{OBJECT_TYPES.get(kind, f'object type {kind}')} {instance}"


class BacnetEngine(OtEngine):
    name = "bacnet"
    settings_class = Config
    protocol = "bacnet"
    type_ids = frozenset({
        RESET, OBJECT_ACCESS, ROUTE, ILLEGAL, PROTOCOL_VERSION, FAILED, MALFORMED_SESSION,
    })  # fmt: skip
    apps = frozenset({"bacnet"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx, Config)
        self._objects = Policy(ctx, "bacnet_service")
        self._routes = Policy(ctx, "bacnet_route")
        self._malformed = MalformedCounter(self.config.malformed, self.config.malformed_window_s)
        self._cache = DissectCache(256)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if not payload or rec.ip_proto != 17 or rec.src_ip is None:
            return None
        out: list[Detection] = []
        problem = self._message(rec, payload, out)
        if problem:
            self._illegal(rec, problem, out)
        return out or None

    def _illegal(self, rec: PacketRecord, problem: str, out: list[Detection]) -> None:
        self.emit(out, ILLEGAL, rec,
                  f"{rec.src_ip} sent an illegal BACnet message to {rec.dst_ip}: {problem}",
                  reason=problem)  # fmt: skip
        if self._malformed.hit(rec, "bacnet"):
            self.emit(
                out,
                MALFORMED_SESSION,
                rec,
                f"{rec.src_ip} sent {self.config.malformed} or more illegal BACnet "
                f"messages to {rec.dst_ip} within {self.config.malformed_window_s:g} s",
            )

    def _message(self, rec: PacketRecord, p: bytes, out: list[Detection]) -> str | None:
        """Judge one datagram; returns why it is illegal, if it is."""
        size = len(p)
        if size < 4:
            return f"{size}-byte datagram shorter than a BVLC header"
        if p[0] != 0x81:
            return None if p[0] == 0x82 else f"BVLC type 0x{p[0]:02X} is not BACnet/IP"
        function, length = p[1], _u16(p, 2)[0]
        if function not in BVLC_FUNCTIONS:
            return f"reserved BVLC function 0x{function:02X}"
        if length != size:
            return f"BVLC length {length} but the datagram carries {size} octets"
        if function == 0x00 and size >= 6 and _u16(p, 4)[0]:
            code = _u16(p, 4)[0]
            self.emit(out, FAILED, rec,
                      f"{rec.src_ip} answered {rec.dst_ip} with BVLC-Result NAK 0x{code:04X}",
                      result_code=code)  # fmt: skip
            return None
        if function not in NPDU_FUNCTIONS:
            return None
        pos = 10 if function == 0x04 else 4
        if pos + 2 > size:
            return "truncated NPDU header"
        version, control = p[pos], p[pos + 1]
        if version != 1:
            self.emit(out, PROTOCOL_VERSION, rec,
                      f"{rec.src_ip} sent a BACnet NPDU with protocol version {version} (must "
                      f"be 1) to {rec.dst_ip}", version=version)  # fmt: skip
            return None
        if control & 0x50:
            return f"reserved NPDU control bits set (0x{control:02X})"
        pos += 2
        dnet = snet = None
        if control & 0x20:
            if pos + 3 > size:
                return "truncated NPDU destination"
            dnet, pos = _u16(p, pos)[0], pos + 3 + p[pos + 2]
        if control & 0x08:
            if pos + 3 > size:
                return "truncated NPDU source"
            snet, pos = _u16(p, pos)[0], pos + 3 + p[pos + 2]
        if dnet is not None:
            pos += 1  # hop count
        if pos > size:
            return "truncated NPDU addresses"
        pair = f"{rec.src_ip}>{rec.dst_ip}"
        if control & 0x80:
            if pos >= size:
                return "network-layer message without its type"
            kind = p[pos]
            name = NETWORK_MESSAGES.get(kind, f"network message 0x{kind:02X}")
            if self._routes.violates(f"{pair}:nl:{kind}", rec.ts_ns):
                self.emit(out, ROUTE, rec,
                          f"{rec.src_ip} sent BACnet {name} to {rec.dst_ip}, not seen during "
                          "learning", message_type=kind)  # fmt: skip
            return None
        if (dnet is not None or snet is not None) and self._routes.violates(
            f"{pair}:net:{dnet}/{snet}", rec.ts_ns
        ):
            nets = ", ".join(
                f"{k} network {v}"
                for k, v in (("destination", dnet), ("source", snet))
                if v is not None
            )
            self.emit(out, ROUTE, rec,
                      f"{rec.src_ip} sent routed BACnet traffic to {rec.dst_ip} ({nets}), not "
                      "seen during learning", dnet=dnet, snet=snet)  # fmt: skip
        if pos >= size:
            return "NPDU without an APDU"
        return self._apdu(rec, p[pos:], pair, out)

    def _apdu(self, rec, apdu: bytes, pair: str, out: list[Detection]) -> str | None:
        kind, size = apdu[0] >> 4, len(apdu)
        if kind == 0:
            header = 6 if apdu[0] & 0x08 else 4
            if size < header:
                return "truncated Confirmed-Request"
            service = apdu[header - 1]
            name = CONFIRMED_SERVICES.get(service)
            if name is None:
                return f"unknown confirmed service {service}"
            self._confirmed(rec, apdu, header, service, name, pair, out)
        elif kind == 1:
            if size < 2:
                return "truncated Unconfirmed-Request"
            if apdu[1] not in UNCONFIRMED_SERVICES:
                return f"unknown unconfirmed service {apdu[1]}"
        elif kind in (5, 6, 7):
            if size < 3:
                return "truncated Error/Reject/Abort PDU"
            self._failure(rec, kind, apdu, out)
        elif kind > 7:
            return f"reserved APDU type {kind}"
        return None

    def _confirmed(self, rec, apdu: bytes, header: int, service: int, name: str, pair: str,
                   out: list[Detection]) -> None:  # fmt: skip
        client, server = rec.src_ip, rec.dst_ip
        target, key = "", f"{pair}:{service}"
        if service in _OBJECT_SERVICES and not apdu[0] & 0x08:
            tag = parse_tag(apdu, header)  # [0] object, or an application-tagged file id
            if tag is not None and tag[2] == 4 and tag[0] == (0 if tag[1] else 12):
                value = int.from_bytes(apdu[header + tag[3] : header + tag[3] + 4], "big")
                target = f" ({_object_text(value)})"
                key += f":{value}"
        if self._objects.violates(key, rec.ts_ns):
            self.emit(out, OBJECT_ACCESS, rec,
                      f"{client} used BACnet {name}{target} on {server}, not seen during "
                      "learning", service=service)  # fmt: skip
        if service == 20:
            packet = self._cache.get(BACnetAPDU, apdu)
            request = packet.getlayer(ReinitializeDeviceRequest) if packet is not None else None
            if request is None or request.truncated:
                return
            state = request.reinitialized_state
            if state in (0, 1):
                password = "with" if request.password else "without"
                self.emit(out, RESET, rec,
                          f"{client} sent BACnet ReinitializeDevice "
                          f"({REINITIALIZED_STATES[state]}, {password} a password) to {server}: "
                          "the device restarts", service=service, state=state)  # fmt: skip

    def _failure(self, rec, kind: int, apdu: bytes, out: list[Detection]) -> None:
        sender, peer = rec.src_ip, rec.dst_ip
        if kind == 5:
            service = apdu[2]
            name = CONFIRMED_SERVICES.get(service, f"service {service}")
            codes = error_class_code(apdu[3:])
            why = "no error class/code"
            if codes is not None:
                cls, code = codes
                why = (
                    f"{ERROR_CLASSES.get(cls, f'class {cls}')} / "
                    f"{ERROR_CODES.get(code, f'code {code}')}"
                )
            text = f"{sender} returned a BACnet Error to {name} from {peer}: {why}"
        elif kind == 6:
            reason = REJECT_REASONS.get(apdu[2], f"reason {apdu[2]}")
            text = f"{sender} rejected a BACnet request from {peer}: {reason}"
        else:
            reason = ABORT_REASONS.get(apdu[2], f"reason {apdu[2]}")
            text = f"{sender} aborted a BACnet transaction with {peer}: {reason}"
        self.emit(out, FAILED, rec, text, pdu_type=kind)
