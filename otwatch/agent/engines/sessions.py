"""Excessive Number of Sessions (anomaly): one client opens many TCP sessions to one server.

Counts distinct client ports of TCP SYNs (so retransmitted SYNs count once) per
client/server pair; ``threshold`` sessions within ``window_s`` (spec: 50 sessions / 1 min).
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import EVENT_SYN, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import DistinctCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["SessionsEngine"]

EXCESSIVE_SESSIONS = "excessive_number_of_sessions"


@dataclass(frozen=True)
class Config:
    threshold: int = 50
    window_s: float = 60.0
    max_tracked: int = 20_000


class SessionsEngine(Engine):
    name = "sessions"
    settings_class = Config
    type_ids = frozenset({EXCESSIVE_SESSIONS})
    apps = frozenset({EVENT_SYN})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self.sessions = DistinctCounter(c.threshold, int(c.window_s * 1e9), c.max_tracked)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        flags = rec.tcp_flags
        if flags is None or flags & 0x12 != 0x02:
            return None
        if not self.sessions.add((rec.src_ip, rec.dst_ip), rec.sport, rec.ts_ns):
            return None
        c = self.config
        return [
            self.detect(
                EXCESSIVE_SESSIONS,
                rec.ts_ns,
                f"{rec.src_ip} opened {c.threshold} TCP sessions to {rec.dst_ip} within "
                f"{c.window_s:g} s (last to port {rec.dport})",
                **endpoint_fields(rec, flow.app if flow is not None else None),
                sessions=c.threshold,
            )
        ]
