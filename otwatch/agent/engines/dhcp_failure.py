"""Device Failed to Receive a Dynamic IP Address (operational).

A DHCP client (keyed by its hardware address) sent DISCOVER or REQUEST and no ACK reached
it within ``timeout_s`` (default 60 s, long enough for the client's retransmissions at
4, 8, 16 and 32 s). NAKs and OFFERs without an ACK count as failure too; the alert says how
many of each were seen. Checked on every tick, so it also fires while the network is quiet.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.dhcp import ACK, DISCOVER, NAK, OFFER, REQUEST, parse_dhcp
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.detection import Detection

__all__ = ["DhcpFailureEngine"]

DHCP_FAILED = "device_failed_to_receive_a_dynamic_ip_address"


@dataclass(frozen=True)
class Config:
    timeout_s: float = 60.0
    max_tracked: int = 10_000


class _Pending:
    __slots__ = ("first_ns", "hostname", "naks", "offers", "requests")

    def __init__(self, ts_ns: int) -> None:
        self.first_ns = ts_ns
        self.requests = self.offers = self.naks = 0
        self.hostname: str | None = None


class DhcpFailureEngine(Engine):
    name = "dhcp_failure"
    settings_class = Config
    type_ids = frozenset({DHCP_FAILED})
    apps = frozenset({"dhcp"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._timeout_ns = int(self.config.timeout_s * 1e9)
        self.pending: dict[str, _Pending] = {}

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        msg = parse_dhcp(rec.payload)
        if msg is None or msg.client_mac is None:
            return None
        mac, kind = msg.client_mac, msg.message_type
        if msg.op == 1 and kind in (DISCOVER, REQUEST):
            entry = self.pending.get(mac)
            if entry is None:
                if len(self.pending) >= self.config.max_tracked:
                    del self.pending[next(iter(self.pending))]
                entry = self.pending[mac] = _Pending(rec.ts_ns)
            entry.requests += 1
            entry.hostname = msg.hostname or entry.hostname
        elif msg.op == 2:
            if kind == ACK:
                self.pending.pop(mac, None)
            elif kind in (NAK, OFFER) and mac in self.pending:
                entry = self.pending[mac]
                if kind == NAK:
                    entry.naks += 1
                else:
                    entry.offers += 1
        return None

    def tick(self, now_ns: int) -> list[Detection] | None:
        timeout = self._timeout_ns
        expired = [(mac, e) for mac, e in self.pending.items() if now_ns - e.first_ns >= timeout]
        if not expired:
            return None
        out = []
        for mac, entry in expired:
            del self.pending[mac]
            name = f" ({entry.hostname})" if entry.hostname else ""
            out.append(
                self.detect(
                    DHCP_FAILED,
                    entry.first_ns + timeout,
                    f"DHCP client {mac}{name} got no address within {self.config.timeout_s:g} s: "
                    f"{entry.requests} DISCOVER/REQUEST, {entry.offers} OFFER, {entry.naks} NAK, "
                    "no ACK",
                    source_mac=mac,
                    protocol="dhcp",
                    hostname=entry.hostname,
                    requests=entry.requests,
                    naks=entry.naks,
                )
            )
        return out

    def restart_segment(self) -> None:
        self.pending.clear()
