"""Unauthorized Multicast/Broadcast Connection (policy): a device sends to a multicast group
or broadcast address it did not use during learning.

Looks at UDP and ICMP packets (application traffic; routing protocols such as OSPF or VRRP
are not connections) to 224.0.0.0/4, ff00::/8, 255.255.255.255 or the Ethernet broadcast MAC
(subnet broadcasts). Link housekeeping is ignored: IGMP, ICMPv6 neighbour discovery and
multicast listener messages, solicited-node groups, and DHCP clients without an address.
While learning, ``source>group`` pairs are recorded (baseline kind ``multicast``); afterwards
a new pair raises at most one detection per ``report_interval_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.icmp import ND_TYPES
from otwatch.agent.engines.base import EVENT_ICMP, EVENT_UDP, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import remember
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["MulticastEngine", "is_group_address"]

UNAUTHORIZED_MULTICAST = "unauthorized_multicast_broadcast_connection"
MULTICAST_KIND = "multicast"
_BROADCAST_MAC = b"\xff" * 6
_group_cache: dict[str, bool] = {}


def is_group_address(address: str) -> bool:
    cached = _group_cache.get(address)
    if cached is not None:
        return cached
    if ":" in address:
        result = address.lower().startswith("ff") and not address.lower().startswith("ff02::1:ff")
    else:
        first = address.split(".", 1)[0]
        result = address == "255.255.255.255" or (first.isdigit() and 224 <= int(first) <= 239)
    if len(_group_cache) >= 65_536:
        _group_cache.clear()
    _group_cache[address] = result
    return result


@dataclass(frozen=True)
class Config:
    report_interval_s: float = 60.0
    max_tracked: int = 10_000


class MulticastEngine(Engine):
    name = "multicast"
    settings_class = Config
    type_ids = frozenset({UNAUTHORIZED_MULTICAST})
    apps = frozenset({EVENT_UDP, EVENT_ICMP})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._interval_ns = int(self.config.report_interval_s * 1e9)
        self._known = ctx.baseline.kind(MULTICAST_KIND)
        self._reported: dict[str, int] = {}

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        dst = rec.dst_ip
        if dst is None:
            return None
        group = _group_cache.get(dst)
        if group is None:
            group = is_group_address(dst)
        if not group and rec.dst_mac != _BROADCAST_MAC:
            return None
        src, proto = rec.src_ip, rec.ip_proto
        if proto == 2 or src in ("0.0.0.0", "::") or (proto == 58 and rec.icmp_type in ND_TYPES):
            return None
        key = f"{src}>{dst}"
        if key in self._known:
            return None
        ts = rec.ts_ns
        if self.ctx.learning.active:
            self.ctx.baseline.add(MULTICAST_KIND, key, ts, {"port": rec.dport})
            return None
        last = self._reported.get(key)
        if last is not None and ts - last < self._interval_ns:
            return None
        remember(self._reported, key, ts, self.config.max_tracked)
        what = "multicast group" if group and dst != "255.255.255.255" else "broadcast address"
        port = f" port {rec.dport}" if rec.dport is not None else ""
        return [
            self.detect(
                UNAUTHORIZED_MULTICAST,
                ts,
                f"{src} sent to {what} {dst}{port}, which it did not use during learning",
                **endpoint_fields(rec),
                port=rec.dport,
            )
        ]
