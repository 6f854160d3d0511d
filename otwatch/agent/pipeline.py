"""The packet pipeline shared by live capture and offline replay.

decode (struct) → flow table → engines (by application protocol) → alert manager. One
instance per worker; ``process`` is the hot path, so it binds what it needs to locals and
calls only the engines subscribed to a packet's protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.decode.flows import FlowTable
from otwatch.agent.decode.headers import decode
from otwatch.agent.decode.ports import TCP_PORTS, UDP_PORTS
from otwatch.agent.engines.base import Engine, EngineContext, NetworkScope
from otwatch.agent.engines.detection import Detection, DetectionFactory
from otwatch.agent.engines.registry import ENGINES
from otwatch.agent.store.baseline import (
    load_baseline,
    load_learning_ns,
    save_baseline,
    save_learning_ns,
)

__all__ = ["Pipeline", "PipelineStats"]

log = logging.getLogger(__name__)

_SYN, _ACK = 0x02, 0x10
Observe = Callable[..., list[Detection] | None]


@dataclass(slots=True)
class PipelineStats:
    packets: int = 0
    bytes: int = 0
    malformed: int = 0
    detections: int = 0
    engine_errors: int = 0


class Pipeline:
    def __init__(
        self,
        manager: AlertManager,
        *,
        learning_period_ns: int | None = None,
        ot_subnets: tuple[str, ...] = (),
        settings: dict | None = None,
        engines: tuple[type[Engine], ...] = ENGINES,
        max_flows: int = 200_000,
    ) -> None:
        self.manager = manager
        self.store = manager.store
        with self.store.session() as session:
            baseline = load_baseline(session)
            remaining = load_learning_ns(session)
            if learning_period_ns is not None:
                remaining = learning_period_ns
                save_learning_ns(session, remaining)
        from otwatch.agent.engines.baseline import LearningClock

        self.ctx = EngineContext(
            factory=DetectionFactory(manager.catalog),
            baseline=baseline,
            learning=LearningClock(remaining),
            scope=NetworkScope(ot_subnets),
            settings=settings or {},
        )
        self.engines = [engine_cls(self.ctx) for engine_cls in engines]
        self._every: list[tuple[str, Observe]] = []
        self._by_app: dict[str, list[tuple[str, Observe]]] = {}
        for engine in self.engines:
            entry = (engine.name, engine.observe)
            if engine.apps is None:
                self._every.append(entry)
            else:
                for app in engine.apps:
                    self._by_app.setdefault(app, []).append(entry)
        self.flows = FlowTable(max_flows)
        self.stats = PipelineStats()
        self._error_logged: set[str] = set()

    def start_segment(self) -> None:
        """A new file or capture session begins: time gaps before it do not count as learning."""
        self.ctx.learning.restart_segment()

    def process(self, ts_ns: int, wire_len: int, linktype: int, data: bytes) -> None:
        stats = self.stats
        stats.packets += 1
        stats.bytes += wire_len
        rec = decode(ts_ns, wire_len, linktype, data)
        if rec.malformed is not None:
            stats.malformed += 1
        self.ctx.learning.advance(ts_ns)
        flow = None
        sport = rec.sport
        if sport is not None and rec.src_ip is not None:
            dport = rec.dport
            proto = rec.ip_proto
            table = TCP_PORTS if proto == 6 else UDP_PORTS
            app = table.get(dport) or table.get(sport)
            if proto == 6 and rec.tcp_flags is not None and rec.tcp_flags & _SYN:
                server_is_src = rec.tcp_flags & _ACK != 0
            else:
                server_is_src = sport in table and dport not in table
            flow = self.flows.lookup(
                rec.src_ip, sport, rec.dst_ip, dport, proto, app, server_is_src, ts_ns, wire_len
            )
            if app is not None:
                subscribers = self._by_app.get(app)
                if subscribers:
                    self._run(subscribers, rec, flow)
        self._run(self._every, rec, flow)

    def _run(self, subscribers: list[tuple[str, Observe]], rec, flow) -> None:
        for name, observe in subscribers:
            try:
                detections = observe(rec, flow)
            except Exception:  # an engine bug must not stop capture
                self.stats.engine_errors += 1
                if name not in self._error_logged:
                    self._error_logged.add(name)
                    log.exception("engine %s failed on a packet; counting further failures", name)
                continue
            if detections:
                observe_alert = self.manager.observe
                for det in detections:
                    self.stats.detections += 1
                    observe_alert(det)

    def flush(self) -> None:
        """Write pending alerts, newly learned baseline facts and the learning clock."""
        self.manager.flush()
        dirty = self.ctx.baseline.take_dirty()
        with self.store.session() as session:
            save_baseline(session, dirty, origin="learning")
            save_learning_ns(session, self.ctx.learning.remaining_ns)
