"""Port Scan Detected (anomaly): one source probes many ports of one destination.

Counts distinct destination ports of connection attempts (TCP SYN without ACK, or the first
UDP datagram of a flow from its client) per source/destination pair in a sliding window;
at ``threshold`` ports within ``window_s`` (spec: 25 scans / 2 min) a detection is raised,
and again for every further ``threshold`` new ports. State is bounded by ``max_tracked``.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import EVENT_SYN, EVENT_UDP, Engine, EngineContext
from otwatch.agent.engines.detection import Detection

__all__ = ["PortScanEngine", "is_connection_attempt"]

PORT_SCAN = "port_scan_detected"
_SYN, _ACK = 0x02, 0x10


@dataclass(frozen=True)
class Config:
    threshold: int = 25
    window_s: float = 120.0
    max_tracked: int = 50_000
    """Source/destination pairs followed at once."""
    max_ports: int = 1_024
    """Distinct ports remembered per pair; past it every attempt counts (a scan by then)."""


def is_connection_attempt(rec: PacketRecord, flow: Flow | None) -> bool:
    """A TCP SYN without ACK, or the first UDP datagram of a flow sent by its client."""
    if rec.ip_proto == 6:
        flags = rec.tcp_flags or 0
        return flags & _SYN != 0 and flags & _ACK == 0
    if rec.ip_proto == 17 and flow is not None:
        return flow.packets == 1 and rec.src_ip == flow.client
    return False


class _Window:
    __slots__ = ("extra", "ports", "reported", "start_ns")

    def __init__(self, start_ns: int) -> None:
        self.start_ns = start_ns
        self.ports: set[int] = set()
        self.extra = 0
        """Attempts counted past ``max_ports`` (the set stops growing there)."""
        self.reported = 0


class PortScanEngine(Engine):
    name = "port_scan"
    settings_class = Config
    type_ids = frozenset({PORT_SCAN})
    apps = frozenset({EVENT_SYN, EVENT_UDP})  # connection attempts only

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = Config(**ctx.settings.get(self.name, {}))
        self._window_ns = int(self.config.window_s * 1e9)
        self._pairs: dict[tuple[str, str], _Window] = {}

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.dport is None or not is_connection_attempt(rec, flow):
            return None
        src, dst = rec.src_ip, rec.dst_ip
        assert src is not None and dst is not None  # a transport port implies an IP header
        pair = (src, dst)
        window = self._pairs.get(pair)
        ts = rec.ts_ns
        if window is None or ts - window.start_ns > self._window_ns:
            if window is None and len(self._pairs) >= self.config.max_tracked:
                del self._pairs[next(iter(self._pairs))]
            window = self._pairs[pair] = _Window(ts)
        ports = window.ports
        if rec.dport in ports:
            return None
        if len(ports) < self.config.max_ports:
            ports.add(rec.dport)
        else:
            window.extra += 1
        probed = len(ports) + window.extra
        threshold = self.config.threshold
        if probed < threshold * (window.reported + 1):
            return None
        window.reported += 1
        proto = "tcp" if rec.ip_proto == 6 else "udp"
        return [
            self.detect(
                PORT_SCAN,
                ts,
                f"{rec.src_ip} probed {probed} {proto} ports of {rec.dst_ip} within "
                f"{self.config.window_s:g} s",
                source_address=rec.src_ip,
                destination_address=rec.dst_ip,
                source_mac=rec.src_mac.hex(":") if rec.src_mac else None,
                destination_mac=rec.dst_mac.hex(":") if rec.dst_mac else None,
                protocol=proto,
                ports_probed=probed,
            )
        ]
