"""Address Scan Detected and Long Duration Address Scan Detected (anomaly).

One source makes connection attempts (TCP SYN, first UDP datagram of a flow, ICMP echo
request) to many distinct addresses of one class-B (/16; /64 for IPv6) network:
``threshold`` addresses within ``window_s`` is an address scan (spec: 50 / 2 min); the same
count spread over ``long_window_s`` without a fast scan is a long-duration scan (spec:
50 / 10 min). While learning, a scanning source is recorded as an authorised scanner
(baseline kind ``address_scanner``) instead of alerting; learned scanners stay silent.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import EVENT_ICMP, EVENT_SYN, EVENT_UDP, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import DistinctCounter, remember
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields, is_attempt, prefix16

__all__ = ["AddressScanEngine"]

ADDRESS_SCAN = "address_scan_detected"
LONG_SCAN = "long_duration_address_scan_detected"
SCANNER_KIND = "address_scanner"
_BROADCAST_TAIL = (".255", ".0")


@dataclass(frozen=True)
class Config:
    threshold: int = 50
    """Distinct destination addresses in one /16 that make a scan."""
    window_s: float = 120.0
    long_window_s: float = 600.0
    max_tracked: int = 20_000
    """Source/network pairs tracked per window length."""


class AddressScanEngine(Engine):
    name = "address_scan"
    settings_class = Config
    type_ids = frozenset({ADDRESS_SCAN, LONG_SCAN})
    apps = frozenset({EVENT_SYN, EVENT_UDP, EVENT_ICMP})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self.fast = DistinctCounter(c.threshold, int(c.window_s * 1e9), c.max_tracked)
        self.slow = DistinctCounter(c.threshold, int(c.long_window_s * 1e9), c.max_tracked)
        self._fast_seen: dict[tuple[str, str], int] = {}
        self._scanners = ctx.baseline.kind(SCANNER_KIND)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        flags = rec.tcp_flags
        if flags is not None and flags & 0x12 != 0x02:
            return None
        src, dst = rec.src_ip, rec.dst_ip
        if src is None or dst is None or not is_attempt(rec, flow):  # set together (IP header)
            return None
        if src in self._scanners or dst.endswith(_BROADCAST_TAIL) or not _unicast(dst):
            return None
        net = prefix16(dst)
        key = (src, net)
        ts = rec.ts_ns
        fast_hit = self.fast.add(key, dst, ts)
        slow_hit = self.slow.add(key, dst, ts)
        if fast_hit:
            remember(self._fast_seen, key, ts, self.config.max_tracked)
            return self._report(ADDRESS_SCAN, rec, net, self.config.window_s)
        if slow_hit:
            fast_at = self._fast_seen.get(key)
            if fast_at is not None and ts - fast_at < self.slow.window_ns:
                return None  # already reported as a (fast) address scan
            return self._report(LONG_SCAN, rec, net, self.config.long_window_s)
        return None

    def _report(self, type_id: str, rec: PacketRecord, net: str, window_s: float):
        src = rec.src_ip
        assert src is not None  # only called for a packet observe() found to have IPs
        if self.ctx.learning.active:
            self.ctx.baseline.add(SCANNER_KIND, src, rec.ts_ns, {"network": net})
            return None
        fields = endpoint_fields(rec)
        fields["destination_address"] = None
        fields["destination_mac"] = None
        kind = "long-duration address scan" if type_id == LONG_SCAN else "address scan"
        return [
            self.detect(
                type_id,
                rec.ts_ns,
                f"{rec.src_ip} tried to connect to {self.config.threshold} addresses of {net} "
                f"within {window_s:g} s ({kind})",
                **fields,
                network=net,
                addresses=self.config.threshold,
            )
        ]


def _unicast(address: str) -> bool:
    if ":" in address:
        return not address.lower().startswith("ff")
    first = address[: address.find(".")]
    return first.isdigit() and int(first) < 224
