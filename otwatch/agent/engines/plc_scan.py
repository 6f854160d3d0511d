"""PLC Scan Detected (anomaly): one source probes many OT service endpoints.

Counts distinct ``(address, port)`` targets on industrial protocol ports (Modbus 502, S7 102,
EtherNet/IP 44818, DNP3 20000, BACnet 47808, ...) that a source tries to connect to;
``threshold`` targets within ``window_s`` is a scan (spec: 10 scans / 2 min). While learning,
every OT connection a source makes is recorded (baseline kind ``ot_connection``) and learned
connections never count, so an HMI or SCADA master connecting to its PLCs is not a scanner.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.ports import OT_PROTOCOLS, TCP_PORTS, UDP_PORTS
from otwatch.agent.engines.base import EVENT_SYN, EVENT_UDP, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import DistinctCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields, is_attempt

__all__ = ["OT_TCP_PORTS", "OT_UDP_PORTS", "PlcScanEngine"]

PLC_SCAN = "plc_scan_detected"
CONNECTION_KIND = "ot_connection"
OT_TCP_PORTS = frozenset(p for p, tag in TCP_PORTS.items() if tag in OT_PROTOCOLS)
OT_UDP_PORTS = frozenset(p for p, tag in UDP_PORTS.items() if tag in OT_PROTOCOLS)


@dataclass(frozen=True)
class Config:
    threshold: int = 10
    window_s: float = 120.0
    max_tracked: int = 20_000


class PlcScanEngine(Engine):
    name = "plc_scan"
    settings_class = Config
    type_ids = frozenset({PLC_SCAN})
    apps = frozenset({EVENT_SYN, EVENT_UDP})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self.targets = DistinctCounter(c.threshold, int(c.window_s * 1e9), c.max_tracked)
        self._known = ctx.baseline.kind(CONNECTION_KIND)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        dport = rec.dport
        if dport is None:
            return None
        proto = rec.ip_proto
        if proto == 6:
            if dport not in OT_TCP_PORTS or rec.tcp_flags & 0x12 != 0x02:  # type: ignore[operator]  # a TCP record: flags set
                return None
        elif proto != 17 or dport not in OT_UDP_PORTS or not is_attempt(rec, flow):
            return None
        key = f"{rec.src_ip}>{rec.dst_ip}:{dport}/{proto}"
        if key in self._known:
            return None
        if self.ctx.learning.active:
            self.ctx.baseline.add(CONNECTION_KIND, key, rec.ts_ns)
            return None
        if not self.targets.add(rec.src_ip, (rec.dst_ip, dport, proto), rec.ts_ns):
            return None
        c = self.config
        tag = (TCP_PORTS if proto == 6 else UDP_PORTS)[dport]
        fields = endpoint_fields(rec, tag)
        fields["destination_address"] = fields["destination_mac"] = None
        return [
            self.detect(
                PLC_SCAN,
                rec.ts_ns,
                f"{rec.src_ip} tried {c.threshold} industrial service endpoints it never used "
                f"before within {c.window_s:g} s (last {rec.dst_ip}:{dport} {tag})",
                **fields,
                targets=c.threshold,
            )
        ]
