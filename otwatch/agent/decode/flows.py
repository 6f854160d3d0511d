"""A bounded flow table: who is client and server, counters, and per-flow parser state.

Bounded by count: when full, the least recently *created* flows go first (an OrderedDict
keeps insertion order and ``popitem(last=False)`` stays O(1) however many flows went before,
unlike ``next(iter(dict))``, which slows down as deleted slots pile up at the front); idle
flows are dropped by ``expire``. A scan of a million distinct flows therefore costs at most
``max_flows`` entries.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

__all__ = ["Flow", "FlowTable"]


class Flow:
    """One conversation between two endpoints on one transport protocol."""

    __slots__ = (
        "app",
        "bytes",
        "client",
        "client_port",
        "first_ns",
        "last_ns",
        "packets",
        "proto",
        "server",
        "server_port",
        "state",
    )

    def __init__(
        self,
        client: str,
        client_port: int,
        server: str,
        server_port: int,
        proto: int,
        app: str | None,
        ts_ns: int,
    ) -> None:
        self.client, self.client_port = client, client_port
        self.server, self.server_port = server, server_port
        self.proto, self.app = proto, app
        self.first_ns = self.last_ns = ts_ns
        self.packets = 0
        self.bytes = 0
        self.state: dict[str, Any] | None = None
        """Per-protocol parser state (reassembly buffers, pending requests), created lazily."""

    def from_client(self, src: str, sport: int) -> bool:
        return src == self.client and sport == self.client_port


class FlowTable:
    def __init__(self, max_flows: int = 200_000) -> None:
        self.max_flows = max_flows
        self._flows: OrderedDict[tuple, Flow] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(self._flows.values())

    def lookup(
        self,
        src: str,
        sport: int,
        dst: str,
        dport: int,
        proto: int,
        app: str | None,
        server_is_src: bool,
        ts_ns: int,
        size: int,
    ) -> Flow:
        """The flow of this packet, created on first sight with the given direction guess."""
        key = (src, sport, dst, dport, proto) if src < dst or (
            src == dst and sport <= dport
        ) else (dst, dport, src, sport, proto)
        flows = self._flows
        flow = flows.get(key)
        if flow is None:
            if server_is_src:
                flow = Flow(dst, dport, src, sport, proto, app, ts_ns)
            else:
                flow = Flow(src, sport, dst, dport, proto, app, ts_ns)
            if len(flows) >= self.max_flows:
                flows.popitem(last=False)
                self.evicted += 1
            flows[key] = flow
        flow.packets += 1
        flow.bytes += size
        if ts_ns > flow.last_ns:
            flow.last_ns = ts_ns
        return flow

    def expire(self, now_ns: int, idle_ns: int) -> int:
        """Drop flows idle for ``idle_ns``; returns how many went."""
        stale = [key for key, flow in self._flows.items() if now_ns - flow.last_ns > idle_ns]
        for key in stale:
            del self._flows[key]
        return len(stale)
