"""Unexpected Traffic for Standard Port (anomaly): a well-known port carrying something else.

The first payload a client sends on a flow to a watched port must look like that port's
protocol: DNS on 53, an HTTP request line on 80, a TLS/SSL hello on 443, an SSH
identification on 22, FTP/SMTP commands on 21/25, TPKT on 102, DNP3 on 20000, IEC 104 on
2404, EtherNet/IP on 44818, Modbus/TCP on 502, DHCP on 67/68, NTP on 123, SNMP on 161 and
BACnet/IP on 47808. For TCP only flows whose SYN was seen are checked, so a capture that
starts mid-stream cannot mistake a body segment for a first payload; for UDP the first
datagram of a flow.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from otwatch.agent.decode.dhcp import parse_dhcp
from otwatch.agent.decode.dns import parse_dns, parse_dns_tcp
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.httpmsg import looks_like_request
from otwatch.agent.decode.modbus import iter_mbap
from otwatch.agent.engines.base import EVENT_DATA, EVENT_SYN, Engine
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["TCP_CHECKS", "UDP_CHECKS", "StandardPortEngine"]

UNEXPECTED_TRAFFIC = "unexpected_traffic_for_standard_port"
_COMMAND = re.compile(rb"[A-Za-z]{3,4}( |\r?\n)")
_ENIP_COMMANDS = frozenset({0x0001, 0x0004, 0x0063, 0x0064, 0x0065, 0x0066, 0x006F, 0x0070})


def _tls(p: bytes) -> bool:
    if len(p) >= 3 and p[0] == 0x16 and p[1] == 3:
        return True
    return len(p) >= 3 and p[0] & 0x80 != 0 and p[2] == 1  # SSLv2-compatible ClientHello


TCP_CHECKS: dict[int, tuple[str, Callable[[bytes], bool]]] = {
    21: ("FTP command", lambda p: _COMMAND.match(p) is not None),
    22: ("SSH identification", lambda p: p.startswith(b"SSH-")),
    25: ("SMTP command", lambda p: _COMMAND.match(p) is not None),
    53: ("DNS over TCP", lambda p: parse_dns_tcp(p) is not None),
    80: ("HTTP request", looks_like_request),
    102: ("TPKT (ISO-on-TCP)", lambda p: len(p) >= 7 and p[0] == 3 and p[1] == 0),
    443: ("TLS handshake", _tls),
    502: ("Modbus/TCP", lambda p: bool(iter_mbap(p))),
    2404: ("IEC 60870-5-104", lambda p: len(p) >= 6 and p[0] == 0x68),
    20000: ("DNP3", lambda p: len(p) >= 10 and p[0] == 0x05 and p[1] == 0x64),
    44818: ("EtherNet/IP", lambda p: len(p) >= 24 and (p[0] | p[1] << 8) in _ENIP_COMMANDS),
}
UDP_CHECKS: dict[int, tuple[str, Callable[[bytes], bool]]] = {
    53: ("DNS", lambda p: parse_dns(p) is not None),
    67: ("DHCP", lambda p: parse_dhcp(p) is not None),
    68: ("DHCP", lambda p: parse_dhcp(p) is not None),
    123: ("NTP", lambda p: len(p) >= 48 and 1 <= (p[0] >> 3) & 7 <= 4),
    161: ("SNMP", lambda p: len(p) >= 2 and p[0] == 0x30),
    47808: ("BACnet/IP", lambda p: len(p) >= 4 and p[0] == 0x81),
}


class StandardPortEngine(Engine):
    name = "standard_port"
    type_ids = frozenset({UNEXPECTED_TRAFFIC})
    apps = frozenset({EVENT_SYN, EVENT_DATA})  # the SYN, then the first payload each way

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if flow is None:
            return None
        dport = rec.dport
        if rec.ip_proto == 6:
            flags = rec.tcp_flags or 0
            state = flow.state
            syn = flags & 0x12 == 0x02
            if not syn and not (state and state.get("port_check")):
                return None  # the common case: a data packet of a flow already checked
            check = TCP_CHECKS.get(dport)  # type: ignore[arg-type]  # None only looks up nothing
            if check is None:
                return None
            if syn:
                if state is None:
                    state = flow.state = {}
                state["port_check"] = True
                return None
            payload = rec.payload
            if not payload or state is None or not state.get("port_check"):
                return None
            if rec.src_ip != flow.client:
                return None
            state["port_check"] = False
        else:
            check = UDP_CHECKS.get(dport)  # type: ignore[arg-type]  # None only looks up nothing
            if check is None or flow.packets != 1 or rec.src_ip != flow.client:
                return None
            payload = rec.payload
            if not payload:
                return None
        expected, valid = check
        if valid(payload):
            return None
        sample = payload[:16].hex()
        return [
            self.detect(
                UNEXPECTED_TRAFFIC,
                rec.ts_ns,
                f"{rec.src_ip} sent traffic that is not {expected} to {rec.dst_ip} port "
                f"{dport} (first bytes {sample})",
                **endpoint_fields(rec),
                destination_port=dport,
                expected=expected,
            )
        ]
