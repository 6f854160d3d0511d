"""A bounded flow table: who is client and server, counters, and per-flow parser state.

Bounded by count: when full, the least recently *created* flows go first (an OrderedDict
keeps insertion order and ``popitem(last=False)`` stays O(1) however many flows went before,
unlike ``next(iter(dict))``, which slows down as deleted slots pile up at the front); idle
flows are dropped by ``expire``. A scan of a million distinct flows therefore costs at most
``max_flows`` entries.

The table also says whether a packet is the first one seen in its direction of a flow, or
the first there with payload (``fresh`` after :meth:`FlowTable.lookup`), so detectors that
care about who talks to whom, or about how a conversation starts, run once per flow
direction (``EVENT_FLOW``, ``EVENT_DATA``) rather than for every data packet.
:meth:`FlowTable.refresh` forgets the directions seen, so a long-lived flow is reported again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from otwatch.agent.decode.ports import TCP_PORTS, UDP_PORTS

__all__ = ["DEFAULT_MAX_FLOWS", "FRESH_DATA", "FRESH_DIRECTION", "Flow", "FlowTable"]

DEFAULT_MAX_FLOWS = 50_000
"""Flows kept at once per worker (each costs ~700 bytes with its key and state): a plant
network has a few thousand, so this leaves room for IT traffic on the same SPAN, and a scan
of a million addresses keeps the agent within its memory bound (``tests/floods``);
``--max-flows`` raises it."""

FRESH_DIRECTION = 1
"""The packet is the first of its direction of the flow (since the last refresh or SYN)."""
FRESH_DATA = 2
"""The packet is the first with payload in its direction (since the last refresh or SYN)."""
_SYN, _ACK = 0x02, 0x10


class Flow:
    """One conversation between two endpoints on one transport protocol."""

    __slots__ = (
        "app",
        "bytes",
        "client",
        "client_dir",
        "client_port",
        "directions",
        "first_ns",
        "folded",
        "last_ns",
        "packets",
        "proto",
        "server",
        "server_port",
        "state",
        "up_bytes",
        "up_packets",
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
        self.up_packets = 0
        self.up_bytes = 0
        """Packets and bytes from the client to the server (the rest went the other way)."""
        self.client_dir = 1
        """Which key direction (1 or 2, see ``directions``) is the client's."""
        self.folded: tuple[int, int, int, int] = (0, 0, 0, 0)
        """``(packets, bytes, up_packets, up_bytes)`` already counted by the device
        inventory (``InventoryEngine.fold``)."""
        self.directions = 0
        """Directions seen since the last refresh (1: the lower key end sent, 2: the other;
        4 and 8: the same with payload)."""
        self.state: dict[str, Any] | None = None
        """Per-protocol parser state (reassembly buffers, pending requests), created lazily."""

    def from_client(self, src: str, sport: int) -> bool:
        return src == self.client and sport == self.client_port


class FlowTable:
    def __init__(self, max_flows: int = DEFAULT_MAX_FLOWS) -> None:
        self.max_flows = max_flows
        self._flows: OrderedDict[tuple, Flow] = OrderedDict()
        self.evicted = 0
        self.fresh = 0
        """``FRESH_*`` bits of the packet of the last ``lookup``."""

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
        ts_ns: int,
        size: int,
        tcp_flags: int | None,
        payload: bytes,
    ) -> Flow:
        """The flow of this packet, created on first sight.

        A new flow's client is the SYN's sender (the SYN-ACK's receiver), else the end whose
        port is not a well-known one; its ``app`` comes from the port tables. A SYN (a new
        connection, perhaps on a reused port pair) makes the flow's directions count as
        unseen again. Afterwards ``fresh`` holds ``FRESH_DIRECTION`` if this is the first
        packet of its direction and ``FRESH_DATA`` if it is the first one with payload.
        """
        if src < dst or (src == dst and sport <= dport):
            key = (src, sport, dst, dport, proto)
            direction = 1
        else:
            key = (dst, dport, src, sport, proto)
            direction = 2
        flows = self._flows
        flow = flows.get(key)
        syn = tcp_flags is not None and tcp_flags & _SYN
        if flow is None:
            table = TCP_PORTS if proto == 6 else UDP_PORTS
            app = table.get(dport) or table.get(sport)
            server_is_src = (
                tcp_flags & _ACK != 0  # type: ignore[operator]  # syn implies TCP flags
                if syn
                else sport in table and dport not in table
            )
            if server_is_src:
                flow = Flow(dst, dport, src, sport, proto, app, ts_ns)
                flow.client_dir = 3 - direction
            else:
                flow = Flow(src, sport, dst, dport, proto, app, ts_ns)
                flow.client_dir = direction
            if len(flows) >= self.max_flows:
                flows.popitem(last=False)
                self.evicted += 1
            flows[key] = flow
        elif syn and not tcp_flags & _ACK:  # type: ignore[operator]  # syn: flags set
            flow.directions = 0
        flow.packets += 1
        flow.bytes += size
        if direction == flow.client_dir:
            flow.up_packets += 1
            flow.up_bytes += size
        if ts_ns > flow.last_ns:
            flow.last_ns = ts_ns
        seen = flow.directions
        if seen & direction:
            fresh = 0
        else:
            fresh = FRESH_DIRECTION
            seen |= direction
        if payload and not seen & direction << 2:
            fresh |= FRESH_DATA
            seen |= direction << 2
        if fresh:
            flow.directions = seen
        self.fresh = fresh
        return flow

    def refresh(self) -> None:
        """Forget which directions were seen: the next packet each way is ``fresh`` again."""
        for flow in self._flows.values():
            flow.directions = 0

    def expire(self, now_ns: int, idle_ns: int) -> int:
        """Drop flows idle for ``idle_ns``; returns how many went."""
        stale = [key for key, flow in self._flows.items() if now_ns - flow.last_ns > idle_ns]
        for key in stale:
            del self._flows[key]
        return len(stale)
