"""ARP Address Scan Detected (anomaly): one MAC asks ARP who-has for many addresses.

Counts distinct target addresses of ARP requests per sender MAC; ``threshold`` targets within
``window_s`` (spec: 40 scans / 6 min) is a scan. Gratuitous ARP and address probes (sender
address 0.0.0.0, RFC 5227) ask for one address and do not count. While learning, a scanning
MAC (a router, a discovery tool) is recorded as authorised (baseline kind ``arp_scanner``)
instead of alerting.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import L3_ARP, PacketRecord
from otwatch.agent.engines.base import EVENT_ARP, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import DistinctCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text

__all__ = ["ArpScanEngine"]

ARP_SCAN = "arp_address_scan_detected"
SCANNER_KIND = "arp_scanner"


@dataclass(frozen=True)
class Config:
    threshold: int = 40
    window_s: float = 360.0
    max_tracked: int = 20_000


class ArpScanEngine(Engine):
    name = "arp_scan"
    settings_class = Config
    type_ids = frozenset({ARP_SCAN})
    apps = frozenset({EVENT_ARP})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self.targets = DistinctCounter(c.threshold, int(c.window_s * 1e9), c.max_tracked)
        self._scanners = ctx.baseline.kind(SCANNER_KIND)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.l3 != L3_ARP or rec.arp_op != 1:
            return None
        sender, target = rec.arp_sender_ip, rec.arp_target_ip
        if sender is None or target is None or sender == target or sender == "0.0.0.0":
            return None
        mac = mac_text(rec.arp_sender_mac or rec.src_mac)
        if mac is None or mac in self._scanners:
            return None
        if not self.targets.add(mac, target, rec.ts_ns):
            return None
        if self.ctx.learning.active:
            self.ctx.baseline.add(SCANNER_KIND, mac, rec.ts_ns, {"address": sender})
            return None
        c = self.config
        return [
            self.detect(
                ARP_SCAN,
                rec.ts_ns,
                f"{sender} ({mac}) sent ARP requests for {c.threshold} different addresses "
                f"within {c.window_s:g} s",
                source_address=sender,
                source_mac=mac,
                protocol="arp",
                addresses=c.threshold,
            )
        ]
