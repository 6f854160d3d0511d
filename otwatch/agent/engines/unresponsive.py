"""Device is Suspected to be Disconnected (Unresponsive) (operational).

A device that has been heard on the network stops answering: ``threshold`` attempts to reach
it (TCP SYNs, ARP requests for its address, ICMP echo requests, or ICMP unreachable reports
about it) within ``window_s`` (spec: 8 attempts / 5 min) and nothing heard from it since
the first of them. Addresses never heard from are not tracked, so scans of empty addresses
raise nothing. Reported once per outage; any packet from the device ends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import L3_ARP, PacketRecord
from otwatch.agent.decode.icmp import quoted_datagram
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.detection import Detection

__all__ = ["UnresponsiveEngine"]

UNRESPONSIVE = "device_is_suspected_to_be_disconnected_unresponsive"


@dataclass(frozen=True)
class Config:
    threshold: int = 8
    window_s: float = 300.0
    max_tracked: int = 100_000
    """Devices remembered as heard (and attempts tracked)."""


class UnresponsiveEngine(Engine):
    name = "unresponsive"
    settings_class = Config
    type_ids = frozenset({UNRESPONSIVE})
    apps = None

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._window_ns = int(self.config.window_s * 1e9)
        self._max = self.config.max_tracked
        self.heard: dict[str, int] = {}
        self.pending: dict[str, list[int]] = {}
        """address -> [first attempt, attempts, reported]"""

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        src = rec.src_ip
        if src is None:
            if rec.l3 != L3_ARP:
                return None
            src = rec.arp_sender_ip
            if src is None:
                return None
            target = rec.arp_target_ip if rec.arp_op == 1 and src != rec.arp_target_ip else None
        else:
            target = None
            flags = rec.tcp_flags
            if flags is not None:
                if flags & 0x12 == 0x02:
                    target = rec.dst_ip
            elif rec.icmp_type is not None:
                if rec.icmp_type in (8, 128):
                    target = rec.dst_ip
                elif rec.icmp_type in (3, 1):
                    quoted = quoted_datagram(rec.ip_proto, rec.icmp_type, rec.payload)
                    if quoted is not None and quoted.dst != src:
                        target = quoted.dst
        heard = self.heard
        if src not in heard:  # (only membership counts: a known device costs one lookup)
            heard[src] = rec.ts_ns
            if len(heard) > self._max:
                del heard[next(iter(heard))]  # the longest-known device (insertion order)
        pending = self.pending
        if pending and src in pending:
            del pending[src]
        if target is None or target not in self.heard:
            return None
        return self._attempt(rec, target)

    def _attempt(self, rec: PacketRecord, target: str) -> list[Detection] | None:
        ts = rec.ts_ns
        entry = self.pending.get(target)
        if entry is None or ts - entry[0] >= self._window_ns:
            if entry is None and len(self.pending) >= self.config.max_tracked:
                del self.pending[next(iter(self.pending))]
            reported = entry[2] if entry is not None else 0
            entry = self.pending[target] = [ts, 0, reported]
        entry[1] += 1
        if entry[1] < self.config.threshold or entry[2]:
            return None
        entry[2] = 1
        c = self.config
        return [
            self.detect(
                UNRESPONSIVE,
                ts,
                f"{target} did not answer {entry[1]} attempts to reach it within "
                f"{c.window_s:g} s (last from {rec.src_ip or rec.arp_sender_ip})",
                source_address=rec.src_ip or rec.arp_sender_ip,
                destination_address=target,
                protocol="arp" if rec.l3 == L3_ARP else None,
                attempts=entry[1],
            )
        ]

    def restart_segment(self) -> None:
        self.pending.clear()
