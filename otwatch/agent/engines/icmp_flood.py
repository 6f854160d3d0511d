"""ICMP Flooding (anomaly): more than ``threshold`` ICMP messages from one source to one
destination within ``window_s`` (spec: 60 packets / 1 min).

Echo replies, error messages (unreachable, time exceeded) and IPv6 neighbour discovery do
not count: they answer someone else's traffic, so a flood is reported once, against its
sender. "More than" keeps a once-per-second ping (60 per minute) quiet.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.decode.icmp import ECHO_REPLY_TYPES, ERROR_TYPES, ND_TYPES
from otwatch.agent.engines.base import EVENT_ICMP, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import RateCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["IcmpFloodEngine"]

ICMP_FLOODING = "icmp_flooding"
_IGNORED = {1: ECHO_REPLY_TYPES | ERROR_TYPES[1], 58: ECHO_REPLY_TYPES | ERROR_TYPES[58] | ND_TYPES}


@dataclass(frozen=True)
class Config:
    threshold: int = 60
    window_s: float = 60.0
    max_tracked: int = 50_000


class IcmpFloodEngine(Engine):
    name = "icmp_flood"
    settings_class = Config
    type_ids = frozenset({ICMP_FLOODING})
    apps = frozenset({EVENT_ICMP})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self.counts = RateCounter(c.threshold + 1, int(c.window_s * 1e9), c.max_tracked)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        icmp_type = rec.icmp_type
        if icmp_type is None or icmp_type in _IGNORED.get(rec.ip_proto, ()):  # type: ignore[arg-type]  # None: no entry
            return None
        if not self.counts.hit((rec.src_ip, rec.dst_ip), rec.ts_ns):
            return None
        c = self.config
        fields = endpoint_fields(rec)
        return [
            self.detect(
                ICMP_FLOODING,
                rec.ts_ns,
                f"{rec.src_ip} sent more than {c.threshold} ICMP messages to {rec.dst_ip} within "
                f"{c.window_s:g} s (type {icmp_type})",
                **fields,
                icmp_type=icmp_type,
            )
        ]
