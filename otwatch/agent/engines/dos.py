"""Suspicion of Denial Of Service Attack (malware): a flood of new connections to one host.

Counts TCP SYNs (without ACK) to each destination from all sources; ``threshold`` attempts
within ``window_s`` (spec: 3000 attempts / 1 min). The alert's source is the attacker when
one source sent them all, else empty (a distributed or spoofed flood). While learning, a
destination that normally takes such rates (a busy server) is recorded (baseline kind
``busy_server``) and stays quiet afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import EVENT_SYN, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text

__all__ = ["DosEngine"]

DOS = "suspicion_of_denial_of_service_attack"
BUSY_KIND = "busy_server"
_MANY = "*"


@dataclass(frozen=True)
class Config:
    threshold: int = 3000
    window_s: float = 60.0
    max_tracked: int = 50_000


class DosEngine(Engine):
    name = "dos"
    settings_class = Config
    type_ids = frozenset({DOS})
    apps = frozenset({EVENT_SYN})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._window_ns = int(c.window_s * 1e9)
        self.windows: dict[str, list] = {}
        """destination -> [window start, attempts, the single source or '*']"""
        self._busy = ctx.baseline.kind(BUSY_KIND)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        flags = rec.tcp_flags
        if flags is None or flags & 0x12 != 0x02:
            return None
        dst, src, ts = rec.dst_ip, rec.src_ip, rec.ts_ns
        assert dst is not None and src is not None  # a TCP header implies an IP header
        windows = self.windows
        entry = windows.get(dst)
        if entry is None or ts - entry[0] >= self._window_ns:
            if entry is not None:
                del windows[dst]
            elif len(windows) >= self.config.max_tracked:
                del windows[next(iter(windows))]
            windows[dst] = entry = [ts, 0, src]
        entry[1] += 1
        if entry[2] != src:
            entry[2] = _MANY
        if entry[1] != self.config.threshold or dst in self._busy:
            return None
        if self.ctx.learning.active:
            self.ctx.baseline.add(BUSY_KIND, dst, ts)
            return None
        single = entry[2] != _MANY
        c = self.config
        return [
            self.detect(
                DOS,
                ts,
                f"{dst} received {c.threshold} connection attempts within {c.window_s:g} s "
                + (f"from {src}" if single else "from many sources"),
                source_address=src if single else None,
                destination_address=dst,
                source_mac=mac_text(rec.src_mac) if single else None,
                destination_mac=mac_text(rec.dst_mac),
                protocol="tcp",
                attempts=c.threshold,
            )
        ]
