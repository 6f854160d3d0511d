"""The inventory's packet hook: who is on the network and what they say about themselves.

An engine in the pipeline's routing sense (it raises no alerts): it sees the first packet of
each flow direction (``@flow``: devices, MACs, VLANs, client/server services, peers), ARP
and layer-2 frames (MAC bindings, PROFINET DCP, LLDP/STP senders), and the packets of the
protocols that carry identification, where a byte check picks the few that do before any
parsing (Modbus FC 43 replies, ENIP ListIdentity and Identity reads, S7 SZL replies and
program transfers, BACnet I-Am and ReadProperty replies, DNP3 link addresses, DNS/mDNS/
LLMNR answers, DHCP). Traffic counters are not counted here but folded from the flow table
at each flush (:meth:`InventoryEngine.fold`).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable

from otwatch.agent.decode.cip import cip_message, parse_enip, parse_request, parse_response
from otwatch.agent.decode.dns import parse_dns
from otwatch.agent.decode.flows import FRESH_DIRECTION, Flow, FlowTable
from otwatch.agent.decode.headers import L3_ARP, PacketRecord
from otwatch.agent.engines.base import EVENT_ARP, EVENT_FLOW, EVENT_L2, Engine, EngineContext
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text
from otwatch.agent.inventory import identify
from otwatch.agent.inventory.netbios import nbdgm_source, nbns_names
from otwatch.agent.inventory.table import DEFAULT_MAX_DEVICES, Device, DeviceTable

__all__ = ["ENGINEERING_TYPES", "InventoryEngine"]

ENGINEERING_TYPES = frozenset({
    "unauthorized_plc_program_upload", "unauthorized_plc_programming", "firmware_update",
    "an_s7_stop_plc_command_was_sent", "unauthorized_mms_program_access",
})  # fmt: skip
"""Detections whose source programs or stops a controller: engineering-station evidence."""

_S7_PROGRAM = frozenset({0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F})  # download / upload
_S7_CONTROL = frozenset({0x28, 0x29})  # PI service (start, compress ...), stop
_LLDP, _PROFINET, _RST = 0x88CC, 0x8892, 0x04
_SYN, _SYN_ACK = 0x02, 0x12
_L2_CONTROL_MACS = frozenset({b"\x01\x80\xc2\x00\x00\x00", b"\x01\x00\x0c\xcc\xcc\xcc",
                              b"\x01\x80\xc2\x00\x00\x0e"})  # fmt: skip
_NAME_APPS = {"dns": "dns", "mdns": "mdns", "llmnr": "llmnr"}
_UDP = 17
_u16 = struct.Struct(">H").unpack_from
_DHCP_MAGIC = b"\x63\x82\x53\x63"


class InventoryEngine(Engine):
    """Keeps the device table; never detects anything."""

    name = "inventory"
    type_ids = frozenset()
    apps = frozenset({EVENT_FLOW, EVENT_ARP, EVENT_L2, "enip", "s7comm", "bacnet", "dnp3",
                      "dns", "mdns", "llmnr", "dhcp", "nbns", "netbios"})  # fmt: skip
    """Not ``modbus``: polling is the hot path, and the Modbus engine, which parses every
    Modbus packet anyway, hands FC 43 replies over (``EngineContext.identified``)."""
    noted_types = ENGINEERING_TYPES
    """The detection types ``note_detection`` looks at (it ignores every other)."""

    def __init__(self, ctx: EngineContext, max_devices: int = DEFAULT_MAX_DEVICES) -> None:
        super().__init__(ctx)
        self.table = DeviceTable(max_devices)
        self._in_scope = ctx.scope.is_ot_device
        self._flows = ctx.flows if ctx.flows is not None else FlowTable(0)
        self._parsers: dict[str, Callable[[PacketRecord, Flow, bytes], None]] = {
            "enip": self._enip, "s7comm": self._s7,
            "bacnet": self._bacnet, "dnp3": self._dnp3, "dns": self._names,
            "mdns": self._names, "llmnr": self._names, "dhcp": self._dhcp,
            "nbns": self._nbns, "netbios": self._nbdgm,
        }  # fmt: skip
        ctx.identified = self._identified

    # -- packets ------------------------------------------------------------------------

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if flow is None:
            if rec.l3 == L3_ARP:
                self._arp(rec)
            elif rec.src_ip is None and rec.src_mac is not None:
                self._l2(rec)
            return None
        if self._flows.fresh & FRESH_DIRECTION:
            self._direction(rec, flow)
        parser = self._parsers.get(flow.app)  # type: ignore[arg-type]  # None: no parser
        if parser is not None and rec.payload:
            parser(rec, flow, rec.payload)
        return None

    def _device(self, ip: str | None, mac: bytes | None, rec: PacketRecord) -> Device | None:
        if ip is not None and not self._in_scope(ip):
            return None
        if ip is None and mac is None:
            return None
        dev = self.table.device(ip, mac_text(mac), rec.ts_ns)
        if rec.vlan is not None:
            dev.vlan = rec.vlan
        return dev

    def _direction(self, rec: PacketRecord, flow: Flow) -> None:
        """First packet of a flow direction: both ends are devices and each other's peers;
        the sender's side of the flow is one of its services (not for a reset: a closed
        port answering a scan serves nothing)."""
        table = self.table
        src, dst = rec.src_ip, rec.dst_ip
        flags = rec.tcp_flags
        sender = self._device(src, rec.src_mac, rec)
        # A connection attempt is no sign that its target exists: a SYN sweep of a /8 would
        # otherwise add every address it tried. The target becomes a device when it answers
        # (SYN-ACK or reset) or sends anything of its own.
        attempt = flags is not None and flags & _SYN_ACK == _SYN
        receiver = None if attempt else self._device(dst, rec.dst_mac, rec)
        if receiver is not None and src is not None:
            table.add_peer(receiver, src)
        if sender is None:
            return
        if dst is not None:
            table.add_peer(sender, dst)
        if flags is not None and flags & _RST:
            return
        transport = "tcp" if flow.proto == 6 else "udp" if flow.proto == 17 else str(flow.proto)
        if src == flow.client and rec.sport == flow.client_port:
            table.add_service(sender, f"client:{flow.app or f'{transport}/{flow.server_port}'}")
        else:
            table.add_service(sender, f"server:{transport}/{flow.server_port}/{flow.app or '-'}")

    def _arp(self, rec: PacketRecord) -> None:
        ip = rec.arp_sender_ip
        if ip is not None and ip != "0.0.0.0":
            self._device(ip, rec.arp_sender_mac, rec)

    def _l2(self, rec: PacketRecord) -> None:
        if rec.ethertype == _PROFINET:
            facts = identify.dcp_facts(rec.payload)
            if facts:
                ip = dict(facts).get("ip")
                dev = self._device(ip if ip and ip != "0.0.0.0" else None, rec.src_mac, rec)
                if dev is not None:
                    self._facts(dev, "profinet-dcp", facts, rec.ts_ns)
        elif rec.ethertype == _LLDP or rec.dst_mac in _L2_CONTROL_MACS:
            dev = self.table.device(None, mac_text(rec.src_mac), rec.ts_ns)
            self.table.add_evidence(dev, "l2_control", rec.ts_ns)

    def _facts(self, dev: Device, source: str, facts: identify.Facts, ts_ns: int) -> None:
        add = self.table.add_fact
        for field, value in facts:
            add(dev, field, source, value, ts_ns)

    def _sender(self, rec: PacketRecord) -> Device | None:
        return self._device(rec.src_ip, rec.src_mac, rec)

    # -- protocols ----------------------------------------------------------------------

    def _identified(self, protocol: str, rec: PacketRecord, payload: bytes) -> None:
        """A Read Device Identification reply the Modbus engine found."""
        if protocol == "modbus":
            facts = identify.modbus_device_id_facts(payload)
            dev = self._sender(rec) if facts else None
            if dev is not None:
                self._facts(dev, "modbus-fc43", facts, rec.ts_ns)

    def _enip(self, rec: PacketRecord, flow: Flow, payload: bytes) -> None:
        if len(payload) < 24:
            return
        command = payload[0] | payload[1] << 8
        from_server = rec.sport == flow.server_port and rec.src_ip == flow.server
        if command == 0x0063 and (from_server or rec.sport == 44818):
            facts = identify.enip_list_identity_facts(payload)
            dev = self._sender(rec) if facts else None
            if dev is not None:
                self._facts(dev, "enip-listidentity", facts, rec.ts_ns)
        elif command == 0x006F:  # SendRRData: Get_Attributes_All of the Identity object
            header = parse_enip(payload)
            msg = header and cip_message(header.command, header.body)
            if not msg:
                return
            state = flow.state if flow.state is not None else {}
            if not from_server:
                req = parse_request(msg[0])
                if req is not None and req.service == 0x01 and req.cls == 0x01:
                    state["inventory_identity"] = True
                    flow.state = state
            elif state.pop("inventory_identity", False):
                resp = parse_response(msg[0])
                if resp is not None and resp.service == 0x01 and resp.status == 0:
                    facts = identify.cip_identity_facts(resp.data)
                    dev = self._sender(rec) if facts else None
                    if dev is not None:
                        self._facts(dev, "cip-identity", facts, rec.ts_ns)

    def _s7(self, rec: PacketRecord, flow: Flow, payload: bytes) -> None:
        if len(payload) < 18 or payload[7] != 0x32:
            return
        rosctr = payload[8]
        if rosctr == 1 and payload[17] in _S7_PROGRAM | _S7_CONTROL:
            dev = self._sender(rec)
            if dev is not None:
                tag = "program_transfer" if payload[17] in _S7_PROGRAM else "plc_control"
                self.table.add_evidence(dev, tag, rec.ts_ns)
        elif rosctr == 7:
            facts = identify.s7_szl_facts(payload)
            dev = self._sender(rec) if facts else None
            if dev is not None:
                self._facts(dev, "s7-szl", facts, rec.ts_ns)

    def _bacnet(self, rec: PacketRecord, flow: Flow, payload: bytes) -> None:
        facts = identify.bacnet_facts(payload)
        dev = self._sender(rec) if facts else None
        if dev is not None:
            source = "bacnet-iam" if ("bacnet_instance", facts[0][1]) == facts[0] else "bacnet-rp"
            self._facts(dev, source, facts, rec.ts_ns)

    def _dnp3(self, rec: PacketRecord, flow: Flow, payload: bytes) -> None:
        sender = identify.dnp3_sender(payload)
        if sender is None:
            return
        dev = self._sender(rec)
        if dev is not None:
            address, master = sender
            self.table.add_fact(dev, "dnp3_address", "dnp3", str(address), rec.ts_ns)
            self.table.add_evidence(dev, "dnp3_master" if master else "dnp3_outstation",
                                    rec.ts_ns)  # fmt: skip

    def _names(self, rec: PacketRecord, flow: Flow, payload: bytes) -> None:
        if len(payload) < 12 or not payload[2] & 0x80:  # responses only
            return
        msg = parse_dns(payload)
        if msg is None:
            return
        source = _NAME_APPS.get(flow.app or "", "dns")
        for answer in msg.answers[:16]:
            if answer.rtype in (1, 28) and answer.value and self._in_scope(answer.value):
                dev = self.table.device(answer.value, None, rec.ts_ns)
                self.table.add_name(dev, answer.name.rstrip(".").lower(), source, rec.ts_ns)

    def _nbns(self, rec: PacketRecord, flow: Flow, payload: bytes) -> None:
        for name, ip in nbns_names(payload, rec.src_ip)[:16]:
            if self._in_scope(ip):
                self.table.add_name(self.table.device(ip, None, rec.ts_ns), name, "nbns",
                                    rec.ts_ns)  # fmt: skip

    def _nbdgm(self, rec: PacketRecord, flow: Flow, payload: bytes) -> None:
        if rec.ip_proto != _UDP or 138 not in (rec.sport, rec.dport):  # not TCP 139 sessions
            return
        source = nbdgm_source(payload)
        if source is not None and self._in_scope(source[1]):
            dev = self.table.device(source[1], None, rec.ts_ns)
            self.table.add_name(dev, source[0], "netbios-dgm", rec.ts_ns)

    def _dhcp(self, rec: PacketRecord, flow: Flow, payload: bytes) -> None:
        if len(payload) < 244 or payload[236:240] != _DHCP_MAGIC:
            return
        options = _dhcp_options(payload[240:])
        kind = options.get(53, b"\x00")[:1]
        mac = payload[28:34]
        if payload[0] == 2 and kind == b"\x05":  # ACK: the address given to chaddr
            ip = ".".join(str(b) for b in payload[16:20])
        elif payload[0] == 1:
            requested = options.get(50)
            ip = ".".join(str(b) for b in (requested or payload[12:16])[:4])
        else:
            return
        if ip == "0.0.0.0":
            return
        dev = self._device(ip, mac, rec)
        if dev is None:
            return
        hostname = options.get(12)
        if hostname:
            self.table.add_name(dev, hostname.decode("latin-1").strip("\x00 ").lower(), "dhcp",
                                rec.ts_ns)  # fmt: skip
        vendor_class = options.get(60)
        if vendor_class:
            text = vendor_class.decode("latin-1").strip("\x00 ")
            self.table.add_fact(dev, "dhcp_vendor_class", "dhcp", text, rec.ts_ns)

    # -- outside the packet path --------------------------------------------------------

    def note_detection(self, det: Detection) -> None:
        """A detection of a controller being programmed or stopped: its source is an
        engineering station."""
        if det.type_id in ENGINEERING_TYPES:
            src = det.fields.get("source_address")
            if isinstance(src, str) and self._in_scope(src):
                dev = self.table.device(src, None, det.ts_ns)
                self.table.add_evidence(dev, "program_transfer", det.ts_ns)

    def fold(self, flows: Iterable[Flow]) -> None:
        """Add the flow table's traffic since the last fold to both ends' counters."""
        count = self.table.count
        for flow in flows:
            packets, size, up_packets, up_bytes = flow.folded
            if flow.packets == packets:
                continue
            dp, db = flow.packets - packets, flow.bytes - size
            dup, dub = flow.up_packets - up_packets, flow.up_bytes - up_bytes
            flow.folded = (flow.packets, flow.bytes, flow.up_packets, flow.up_bytes)
            count(flow.client, dup, dub, dp - dup, db - dub)
            count(flow.server, dp - dup, db - dub, dup, dub)


def _dhcp_options(data: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    pos = 0
    while pos + 2 <= len(data):
        code = data[pos]
        if code == 255:
            break
        if code == 0:
            pos += 1
            continue
        length = data[pos + 1]
        out[code] = data[pos + 2 : pos + 2 + length]
        pos += 2 + length
    return out
