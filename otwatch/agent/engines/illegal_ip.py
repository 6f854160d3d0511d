"""Illegal IP Address (operational): packets on the wire to or from addresses that cannot be
there.

Source: 0.0.0.0 or :: outside DHCP/IGMP/neighbour discovery (for example in TCP), loopback
(127.0.0.0/8, ::1), multicast (224.0.0.0/4, ff00::/8), class E (240.0.0.0/4) and
255.255.255.255. Destination: 0.0.0.0 or ::, loopback, and class E other than the
limited broadcast. One detection per source/destination pair per ``report_interval_s``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import EVENT_FLOW, EVENT_ICMP, EVENT_IP, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import remember
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["IllegalIpEngine", "address_class"]

ILLEGAL_IP = "illegal_ip_address"
OK, UNSPECIFIED, LOOPBACK, MULTICAST, RESERVED, BROADCAST = 0, 1, 2, 4, 8, 16
_NAMES = {
    UNSPECIFIED: "unspecified", LOOPBACK: "loopback", MULTICAST: "multicast",
    RESERVED: "reserved (class E)", BROADCAST: "limited broadcast",
}  # fmt: skip
_SRC_BAD = LOOPBACK | MULTICAST | RESERVED | BROADCAST
_DST_BAD = UNSPECIFIED | LOOPBACK | RESERVED
_cache: dict[str, int] = {}


def address_class(address: str) -> int:
    """A bit set of the special ranges an address falls in (0 for ordinary ones)."""
    cls = _cache.get(address)
    if cls is not None:
        return cls
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        cls = OK
    else:
        cls = OK
        if ip.is_unspecified:
            cls = UNSPECIFIED
        elif ip.is_loopback:
            cls = LOOPBACK
        elif ip.is_multicast:
            cls = MULTICAST
        elif address == "255.255.255.255":
            cls = BROADCAST
        elif isinstance(ip, ipaddress.IPv4Address) and ip.packed[0] >= 240:
            cls = RESERVED
    if len(_cache) >= 65_536:
        _cache.clear()
    _cache[address] = cls
    return cls


@dataclass(frozen=True)
class Config:
    report_interval_s: float = 60.0
    max_tracked: int = 10_000


class IllegalIpEngine(Engine):
    name = "illegal_ip"
    settings_class = Config
    type_ids = frozenset({ILLEGAL_IP})
    apps = frozenset({EVENT_FLOW, EVENT_ICMP, EVENT_IP})  # the addresses of a flow do not change

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._interval_ns = int(self.config.report_interval_s * 1e9)
        self._reported: dict[tuple[str, str], int] = {}

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        src, dst = rec.src_ip, rec.dst_ip
        if src is None or dst is None:  # both are set together, by the IP header
            return None
        src_cls = _cache.get(src)
        if src_cls is None:
            src_cls = address_class(src)
        dst_cls = _cache.get(dst)
        if dst_cls is None:
            dst_cls = address_class(dst)
        if not src_cls and not dst_cls:
            return None
        reason = None
        if src_cls & _SRC_BAD:
            reason = f"source {src} is a {_NAMES[src_cls]} address"
        elif src_cls == UNSPECIFIED and not _may_be_unspecified(rec):
            what = "TCP" if rec.ip_proto == 6 else "this traffic"
            reason = f"source {src} is unspecified in {what}"
        elif dst_cls & _DST_BAD:
            reason = f"destination {dst} is a {_NAMES[dst_cls]} address"
        if reason is None:
            return None
        key, ts = (src, dst), rec.ts_ns
        last = self._reported.get(key)
        if last is not None and ts - last < self._interval_ns:
            return None
        remember(self._reported, key, ts, self.config.max_tracked)
        return [
            self.detect(
                ILLEGAL_IP,
                ts,
                f"packet from {src} to {dst} on the wire: {reason}",
                **endpoint_fields(rec),
                reason=reason,
            )
        ]


def _may_be_unspecified(rec: PacketRecord) -> bool:
    """0.0.0.0/:: as source is legal for DHCP clients, IGMP/MLD and duplicate address
    detection (RFC 2131, RFC 3376, RFC 4862)."""
    proto = rec.ip_proto
    if proto == 17:
        return rec.sport == 68 or rec.dport in (67, 547)
    return proto in (2, 58)
