"""EtherNet/IP and CIP detectors: controller stop/reset/start, firmware updates and revision
changes, unlearned encapsulation commands, classes, services, tags, PCCC commands and I/O
connections, and failed requests.

Encapsulation messages are reassembled per TCP flow direction and parsed with
``decode.cip`` (struct; see there why not Scapy). Requests inside a Multiple_Service_Packet or
an Unconnected_Send are judged one by one; replies are matched to their request by the
encapsulation sender context (unconnected) or the connection sequence count (connected).

- Stop (0x07) to any object: *Controller Stop*; Reset (0x05) to the Identity object:
  *Controller Reset*; Start (0x06): *PLC Operating Mode Changed* (the device is the source).
- A request to class 0xA1 other than a Get (Rockwell's firmware-update object, as used by
  ControlFLASH; judgement from the corpus): *Firmware Update*.
- An Identity revision (Get_Attributes_All reply or ListIdentity reply) that differs from the
  learned one: *Firmware Version Changed*.
- Unlearned client → server encapsulation command, class, service of a learned class, tag
  (symbolic path), PCCC command, or class 0/1 (I/O) Forward_Open connection path: the
  *New Activity Detected - ...* types (policy).
- A reply with a non-zero encapsulation status: *EtherNet/IP Encapsulation Protocol Command
  Failed*; a CIP reply with a general status other than success or partial transfer:
  *EtherNet/IP CIP Service Request Failed* (the device that failed is the source).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otwatch.agent.decode.cip import (
    CIP_STATUS,
    ENIP_COMMANDS,
    ENIP_STATUS,
    CipRequest,
    CipResponse,
    Identity,
    cip_message,
    class_name,
    embedded_requests,
    embedded_responses,
    forward_open_connection,
    frame_length,
    identity_from_attributes,
    list_identity,
    parse_enip,
    parse_request,
    parse_response,
    pccc_command,
    resync,
    service_name,
)
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.reassembly import FrameReader, Stream
from otwatch.agent.engines.base import EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.ot_support import OtEngine, Policy, flow_state

__all__ = ["CipEngine", "Config"]

STOP = "controller_stop"
RESET = "controller_reset"
MODE = "plc_operating_mode_changed"
FIRMWARE_UPDATE = "firmware_update"
FIRMWARE_VERSION = "firmware_version_changed"
NEW_COMMAND = "new_activity_detected_ethernet_ip_protocol_command"
NEW_CLASS = "new_activity_detected_cip_class"
NEW_SERVICE = "new_activity_detected_cip_class_service"
NEW_SYMBOL = "new_activity_detected_cip_symbol"
NEW_PCCC = "new_activity_detected_cip_pccc_command"
NEW_IO = "new_activity_detected_ethernet_ip_i_o_connection"
ENCAP_FAILED = "ethernet_ip_encapsulation_protocol_command_failed"
SERVICE_FAILED = "ethernet_ip_cip_service_request_failed"

ENIP_PORT = 44818
FIRMWARE_CLASS = 0xA1
_GETS = frozenset({0x01, 0x03, 0x0E})
_WRAPPERS = frozenset({(0x0A, 0x02), (0x52, 0x06)})
_OK_STATUS = frozenset({0x00, 0x06})


@dataclass(frozen=True)
class Config:
    max_buffer: int = 65_536
    """Bytes of an incomplete encapsulation message kept per flow direction."""


class _FlowState:
    __slots__ = ("pending", "streams")

    def __init__(self) -> None:
        self.streams = (Stream(), Stream())
        self.pending: dict[bytes | int, CipRequest] = {}


class CipEngine(OtEngine):
    name = "cip"
    settings_class = Config
    protocol = "cip"
    type_ids = frozenset({
        STOP, RESET, MODE, FIRMWARE_UPDATE, FIRMWARE_VERSION, NEW_COMMAND, NEW_CLASS,
        NEW_SERVICE, NEW_SYMBOL, NEW_PCCC, NEW_IO, ENCAP_FAILED, SERVICE_FAILED,
    })  # fmt: skip
    apps = frozenset({"enip"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx, Config)
        self.reader = FrameReader(frame_length, resync, max_buffer=self.config.max_buffer)
        self._commands = Policy(ctx, "enip_command")
        self._classes = Policy(ctx, "cip_class")
        self._services = Policy(ctx, "cip_service")
        self._symbols = Policy(ctx, "cip_symbol")
        self._pccc = Policy(ctx, "cip_pccc")
        self._io = Policy(ctx, "enip_io")
        self._revision = Policy(ctx, "cip_revision")
        self._revisions: dict[str, str] = {}
        for key in ctx.baseline.kind("cip_revision"):
            device, _, revision = key.partition("=")
            self._revisions[device] = revision

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        payload = rec.payload
        if not payload or rec.src_ip is None:
            return None
        st = flow_state(flow, "cip", _FlowState)
        from_server = rec.sport == ENIP_PORT and rec.dport != ENIP_PORT
        if rec.ip_proto == 6:
            frames, _ = self.reader.feed(st.streams[from_server], rec.tcp_seq, payload)
        else:
            frames = [payload]
        out: list[Detection] = []
        for frame in frames:
            header = parse_enip(frame)
            if header is None:
                continue
            if from_server:
                self._reply(rec, header, st, out)
            else:
                self._request_message(rec, header, st, out)
        return out or None

    # -- requests -----------------------------------------------------------------------------

    def _request_message(self, rec, header, st: _FlowState, out: list[Detection]) -> None:
        client, server, ts = rec.src_ip, rec.dst_ip, rec.ts_ns
        pair = f"{client}>{server}"
        command = header.command
        if self._commands.violates(f"{pair}:{command}", ts):
            name = ENIP_COMMANDS.get(command, f"command 0x{command:04X}")
            self.emit(out, NEW_COMMAND, rec,
                      f"{client} sent EtherNet/IP {name} (0x{command:04X}) to {server}, not seen "
                      "during learning", command=command)  # fmt: skip
        message = cip_message(command, header.body)
        if message is None:
            return
        msg, sequence = message
        request = parse_request(msg)
        if request is None:
            return
        if len(st.pending) >= 64:
            st.pending.clear()
        st.pending[header.context if sequence is None else sequence] = request
        self._request(rec, pair, request, out)
        for inner in embedded_requests(request):
            self._request(rec, pair, inner, out)

    def _request(self, rec, pair: str, req: CipRequest, out: list[Detection]) -> None:
        client, server, ts = rec.src_ip, rec.dst_ip, rec.ts_ns
        service, cls = req.service, req.cls
        name = req.name
        op = f"CIP {name}{'' if name.startswith('service') else f' (0x{service:02X})'} on "
        op += class_name(cls) if cls is not None else f"tag {req.symbol!r}"
        if cls is not None and req.instance is not None:
            op += f" instance {req.instance}"
        info: dict[str, Any] = {"service": service, "class_id": cls}
        if service == 0x07:
            self.emit(out, STOP, rec, f"{client} sent a {op} to {server}", **info)
        elif service == 0x05 and cls == 0x01:
            self.emit(
                out, RESET, rec, f"{client} reset {server} ({op}): the device restarts", **info
            )
        elif service == 0x06:
            self.emit(out, MODE, rec, f"{client} sent a {op} to {server}", reverse=True, **info)
        if cls == FIRMWARE_CLASS and service not in _GETS:
            self.emit(
                out,
                FIRMWARE_UPDATE,
                rec,
                f"{client} sent a firmware update to {server} ({op})",
                **info,
            )
        if (service, cls) in _WRAPPERS:
            return  # judged by the requests it carries
        if cls is not None:
            if self._classes.violates(f"{pair}:{cls}", ts):
                self.emit(out, NEW_CLASS, rec,
                          f"{client} accessed {class_name(cls)} on {server} ({op}), not seen "
                          "during learning", **info)  # fmt: skip
            elif self._services.violates(f"{pair}:{cls}:{service}", ts):
                self.emit(out, NEW_SERVICE, rec,
                          f"{client} used {op} on {server}, a service of this class not seen "
                          "during learning", **info)  # fmt: skip
        if req.symbol is not None and self._symbols.violates(f"{pair}:{req.symbol[:128]}", ts):
            self.emit(out, NEW_SYMBOL, rec,
                      f"{client} accessed tag {req.symbol!r} on {server} with CIP "
                      f"{service_name(service, cls, req.symbol)}, not seen during learning",
                      symbol=req.symbol, **info)  # fmt: skip
        if cls == 0x67 and service == 0x4B:
            command = pccc_command(req.data)
            if command is not None and self._pccc.violates(f"{pair}:{command[0]}:{command[1]}",
                                                           ts):  # fmt: skip
                self.emit(out, NEW_PCCC, rec,
                          f"{client} sent PCCC command 0x{command[0]:02X}"
                          f"{'' if command[1] is None else f' function 0x{command[1]:02X}'} to "
                          f"{server}, not seen during learning", pccc_command=command[0],
                          pccc_function=command[1])  # fmt: skip
        if cls == 0x06 and service in (0x54, 0x5B):
            connection = forward_open_connection(req)
            if connection is not None and connection[0] in (0, 1):
                transport, path = connection
                if self._io.violates(f"{pair}:{path.hex()}", ts):
                    self.emit(out, NEW_IO, rec,
                              f"{client} opened a class {transport} I/O connection to {server} "
                              f"(connection path {path.hex()}), not seen during learning",
                              connection_path=path.hex(), **info)  # fmt: skip

    # -- replies ------------------------------------------------------------------------------

    def _reply(self, rec, header, st: _FlowState, out: list[Detection]) -> None:
        server, client = rec.src_ip, rec.dst_ip
        command = header.command
        if header.status:
            reason = ENIP_STATUS.get(header.status, "unknown status")
            name = ENIP_COMMANDS.get(command, f"command 0x{command:04X}")
            self.emit(out, ENCAP_FAILED, rec,
                      f"{server} failed EtherNet/IP {name} from {client}: status "
                      f"0x{header.status:04X} ({reason})", command=command,
                      status=header.status)  # fmt: skip
        if command == 0x0063:
            identity = list_identity(header.body)
            if identity is not None:
                self._revision_seen(rec, identity, "ListIdentity reply", out)
            return
        message = cip_message(command, header.body)
        if message is None:
            return
        msg, sequence = message
        resp = parse_response(msg)
        if resp is None:
            return
        req = st.pending.pop(header.context if sequence is None else sequence, None)
        self._response(rec, resp, req, out)
        if req is not None:
            inner = embedded_requests(req)
            for i, sub in enumerate(embedded_responses(resp)):
                self._response(rec, sub, inner[i] if i < len(inner) else None, out)

    def _response(self, rec, resp: CipResponse, req: CipRequest | None, out) -> None:
        server, client = rec.src_ip, rec.dst_ip
        cls = req.cls if req is not None else None
        if resp.status not in _OK_STATUS:
            reason = CIP_STATUS.get(resp.status, "unknown status")
            target = f" on {class_name(cls)}" if req is not None else ""
            self.emit(out, SERVICE_FAILED, rec,
                      f"{server} failed CIP {service_name(resp.service, cls)}{target} from "
                      f"{client}: general status 0x{resp.status:02X} ({reason})",
                      service=resp.service, class_id=cls, status=resp.status)  # fmt: skip
        elif resp.service == 0x01 and cls == 0x01:
            identity = identity_from_attributes(resp.data)
            if identity is not None:
                self._revision_seen(rec, identity, "Identity Get_Attributes_All reply", out)

    def _revision_seen(self, rec, identity: Identity, source: str, out) -> None:
        device, revision = rec.src_ip, identity.revision
        known = self._revisions.get(device)
        if known is None or self.ctx.learning.active:
            self._revisions[device] = revision
            self._revision.violates(f"{device}={revision}", rec.ts_ns)  # learns if learning
        elif revision != known:
            self.emit(out, FIRMWARE_VERSION, rec,
                      f"{device} ({identity.product_name}) reports firmware revision {revision} "
                      f"in a {source}; the learned revision is {known}",
                      firmware_version=revision, previous_version=known,
                      product=identity.product_name)  # fmt: skip
