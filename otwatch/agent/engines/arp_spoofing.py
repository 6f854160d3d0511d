"""ARP Spoofing (anomaly): an address claimed by two MACs, or a gratuitous ARP flood.

Conflict: the sender address of ARP messages changes hands between MACs ``min_changes`` times
within ``window_s`` (default 2 changes / 60 s: the owner answers, the spoofer re-poisons). One
change alone is a replaced device or a DHCP reassignment and raises nothing; VRRP/HSRP keep
their virtual MAC, so fail-over does not trigger either. The alert names the challenger (the
MAC that took the address from its previous owner) as source.

Flood: ``flood_threshold`` gratuitous ARP messages (sender address = target address) from one
MAC within ``flood_window_s`` (spec: 60 packets / 1 min).
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import L3_ARP, PacketRecord
from otwatch.agent.engines.base import EVENT_ARP, Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import RateCounter, remember
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text

__all__ = ["ArpSpoofingEngine"]

ARP_SPOOFING = "arp_spoofing"


@dataclass(frozen=True)
class Config:
    min_changes: int = 2
    window_s: float = 60.0
    flood_threshold: int = 60
    flood_window_s: float = 60.0
    max_tracked: int = 50_000


class _Claim:
    __slots__ = ("challenger", "changes", "current", "owner", "since_ns")

    def __init__(self, mac: str, ts_ns: int) -> None:
        self.owner = self.current = mac
        self.challenger: str | None = None
        self.changes = 0
        self.since_ns = ts_ns


class ArpSpoofingEngine(Engine):
    name = "arp_spoofing"
    settings_class = Config
    type_ids = frozenset({ARP_SPOOFING})
    apps = frozenset({EVENT_ARP})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._window_ns = int(c.window_s * 1e9)
        self.claims: dict[str, _Claim] = {}
        self.gratuitous = RateCounter(c.flood_threshold, int(c.flood_window_s * 1e9), c.max_tracked)

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.l3 != L3_ARP:
            return None
        address, raw_mac = rec.arp_sender_ip, rec.arp_sender_mac
        if address is None or raw_mac is None or address == "0.0.0.0":
            return None
        mac = mac_text(raw_mac)
        ts = rec.ts_ns
        out = None
        if address == rec.arp_target_ip and self.gratuitous.hit(mac, ts):
            c = self.config
            out = [
                self.detect(
                    ARP_SPOOFING,
                    ts,
                    f"{mac} sent {c.flood_threshold} gratuitous ARP messages within "
                    f"{c.flood_window_s:g} s (last for {address})",
                    source_address=address,
                    source_mac=mac,
                    protocol="arp",
                    reason="gratuitous ARP flood",
                )
            ]
        claim = self.claims.get(address)
        if claim is None:
            remember(self.claims, address, _Claim(mac, ts), self.config.max_tracked)
            return out
        if mac == claim.current:
            return out
        if ts - claim.since_ns >= self._window_ns:  # quiet since the last change: new owner
            claim.owner, claim.challenger, claim.changes, claim.since_ns = (
                claim.current, None, 0, ts,
            )  # fmt: skip
        if claim.challenger is None and mac != claim.owner:
            claim.challenger = mac
        claim.current = mac
        claim.changes += 1
        if claim.changes != self.config.min_changes or claim.challenger is None:
            return out
        out = out or []
        out.append(
            self.detect(
                ARP_SPOOFING,
                ts,
                f"{address} is claimed by two MAC addresses: {claim.owner} and "
                f"{claim.challenger} ({claim.changes} changes within {self.config.window_s:g} s)",
                source_address=address,
                source_mac=claim.challenger,
                protocol="arp",
                reason="address claimed by two MACs",
                claimed_by=[claim.owner, claim.challenger],
            )
        )
        return out
