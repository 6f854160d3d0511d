"""New Asset Detected (policy): a plant device not seen during learning starts sending.

A device is an IP address that sends traffic (or announces itself in ARP). While learning,
every plant device joins the baseline; afterwards an unknown one raises a detection, repeated
at most once per ``report_interval_s`` while it keeps talking (the alert's count grows).
Only plant (OT-scope) addresses count: new IT or internet hosts do not alert (spec).
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import L3_ARP, PacketRecord
from otwatch.agent.engines.base import (
    EVENT_ARP,
    EVENT_FLOW,
    EVENT_ICMP,
    EVENT_IP,
    Engine,
    EngineContext,
)
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text

__all__ = ["NewAssetEngine"]

NEW_ASSET = "new_asset_detected"


@dataclass(frozen=True)
class Config:
    report_interval_s: float = 60.0
    """Repeat detections of one new device at most this often."""


class NewAssetEngine(Engine):
    name = "assets"
    settings_class = Config
    type_ids = frozenset({NEW_ASSET})
    apps = frozenset({EVENT_FLOW, EVENT_ARP, EVENT_ICMP, EVENT_IP})  # senders, not packets

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = Config(**ctx.settings.get(self.name, {}))
        self._known = ctx.baseline.kind("device")
        self._outside: set[str] = set()
        self._reported: dict[str, int] = {}
        self._interval_ns = int(self.config.report_interval_s * 1e9)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.l3 == L3_ARP:
            src, mac = rec.arp_sender_ip, rec.arp_sender_mac
        else:
            src, mac = rec.src_ip, rec.src_mac
        if src is None or src in self._known or src in self._outside:
            return None
        if not self.ctx.scope.is_ot_device(src):
            if len(self._outside) > 100_000:
                self._outside.clear()
            self._outside.add(src)
            return None
        ts = rec.ts_ns
        if self.ctx.learning.active:
            self.ctx.baseline.add("device", src, ts, {"mac": mac_text(mac)})
            return None
        last = self._reported.get(src)
        if last is not None and ts - last < self._interval_ns:
            return None
        if len(self._reported) > 100_000:
            self._reported.clear()
        self._reported[src] = ts
        mac_str = mac_text(mac)
        protocol = (
            flow.app if flow is not None and flow.app else ("arp" if rec.l3 == L3_ARP else None)
        )
        return [
            self.detect(
                NEW_ASSET,
                ts,
                f"new device {src}"
                + (f" ({mac_str})" if mac_str else "")
                + " started communicating; it was not seen during learning",
                source_address=src,
                source_mac=mac_str,
                protocol=protocol,
            )
        ]
