"""The packet pipeline shared by live capture and offline replay.

decode (struct) → flow table → engines (by application protocol) → alert manager. One
instance per worker; ``process`` is the hot path, so it binds what it needs to locals and
calls only the engines subscribed to a packet's protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.decode.flows import FlowTable
from otwatch.agent.decode.headers import L3_ARP, PacketRecord, decode
from otwatch.agent.decode.ports import TCP_PORTS, UDP_PORTS
from otwatch.agent.engines.base import (
    EVENT_ARP,
    EVENT_ICMP,
    EVENT_L2,
    EVENT_SYN,
    EVENT_SYNACK,
    EVENT_UDP,
    Engine,
    EngineContext,
    NetworkScope,
)
from otwatch.agent.engines.custom_rules import CustomRuleEngine
from otwatch.agent.engines.detection import Detection, DetectionFactory
from otwatch.agent.engines.registry import ENGINES
from otwatch.agent.store.baseline import (
    BASELINE_VERSION,
    load_baseline,
    load_learning_ns,
    save_baseline,
    save_learning_ns,
)
from otwatch.agent.store.models import BaselineFact
from otwatch.agent.store.rules import load_custom_rules, save_rule_events
from otwatch.agent.store.state import ALERTS_VERSION, get_state

__all__ = ["Pipeline", "PipelineStats"]

log = logging.getLogger(__name__)

_SYN, _ACK = 0x02, 0x10
TICK_NS = 1_000_000_000
"""Engines' ``tick`` runs about once per second of traffic time (and of wall time when the
live capture loop calls :meth:`Pipeline.tick` while idle)."""
Observe = Callable[..., list[Detection] | None]


@dataclass(slots=True)
class PipelineStats:
    packets: int = 0
    bytes: int = 0
    malformed: int = 0
    detections: int = 0
    engine_errors: int = 0


def packet_event(rec: PacketRecord) -> str | None:
    """The packet-event tag of a decoded packet (``engines.base.EVENT_*``), or None."""
    flags = rec.tcp_flags
    if flags is not None:
        return (EVENT_SYNACK if flags & _ACK else EVENT_SYN) if flags & _SYN else None
    if rec.ip_proto == 17:
        return EVENT_UDP
    if rec.icmp_type is not None:
        return EVENT_ICMP
    if rec.l3 == L3_ARP:
        return EVENT_ARP
    return EVENT_L2 if rec.src_ip is None else None


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
        settings = dict(settings or {})
        self._rules_from_store = CustomRuleEngine.name not in settings
        with self.store.session() as session:
            baseline = load_baseline(session)
            remaining = load_learning_ns(session)
            if learning_period_ns is not None:
                remaining = learning_period_ns
                save_learning_ns(session, remaining)
            self._alerts_version = int(get_state(session, ALERTS_VERSION, 0))
            self._baseline_version = int(get_state(session, BASELINE_VERSION, 0))
            if self._rules_from_store:
                settings[CustomRuleEngine.name] = {"rules": load_custom_rules(session)}
        self._learning_saved = remaining
        from otwatch.agent.engines.baseline import LearningClock

        self.ctx = EngineContext(
            factory=DetectionFactory(manager.catalog),
            baseline=baseline,
            learning=LearningClock(remaining),
            scope=NetworkScope(ot_subnets),
            settings=settings,
        )
        self.engines = [engine_cls(self.ctx) for engine_cls in engines]
        self._tickers = [
            (engine.name, engine.tick)
            for engine in self.engines
            if type(engine).tick is not Engine.tick
        ]
        self._next_tick_ns = 0
        self._custom = [e for e in self.engines if isinstance(e, CustomRuleEngine)]
        self._subscribe()
        self.flows = FlowTable(max_flows)
        self.ctx.flows = self.flows
        self._interface_last = self.ctx.interface_last_ns
        self.stats = PipelineStats()
        self._error_logged: set[str] = set()

    def _subscribe(self) -> None:
        """(Re)build who is called for what from each engine's ``apps`` (an engine may change
        its own, e.g. the custom-rule engine with no rules subscribes to nothing)."""
        self._every: list[tuple[str, Observe]] = []
        self._by_app: dict[str, list[tuple[str, Observe]]] = {}
        for engine in self.engines:
            entry = (engine.name, engine.observe)
            if engine.apps is None:
                self._every.append(entry)
            else:
                for app in engine.apps:
                    self._by_app.setdefault(app, []).append(entry)

    def start_segment(self) -> None:
        """A new file or capture session begins: time gaps before it do not count as learning."""
        self.ctx.learning.restart_segment()
        self._next_tick_ns = 0
        for engine in self.engines:
            engine.restart_segment()

    def process(
        self, ts_ns: int, wire_len: int, linktype: int, data: bytes, interface: str | None = None
    ) -> None:
        stats = self.stats
        stats.packets += 1
        stats.bytes += wire_len
        if interface is not self.ctx.interface:
            self.ctx.interface = interface
        if ts_ns >= self._next_tick_ns:
            self.tick(ts_ns)
        self._interface_last[interface] = ts_ns
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
        # packet events (see engines.base.EVENT_*): attempt counters skip data packets
        event = packet_event(rec)
        if event is not None:
            subscribers = self._by_app.get(event)
            if subscribers:
                self._run(subscribers, rec, flow)

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

    def tick(self, now_ns: int) -> None:
        """Let engines detect absence (timeouts, silence) at ``now_ns``; the capture loop calls
        this with wall time while no packets arrive, ``process`` with traffic time."""
        self._next_tick_ns = now_ns + TICK_NS
        for name, tick in self._tickers:
            try:
                detections = tick(now_ns)
            except Exception:  # an engine bug must not stop capture
                self.stats.engine_errors += 1
                if name not in self._error_logged:
                    self._error_logged.add(name)
                    log.exception("engine %s failed on a tick; counting further failures", name)
                continue
            if detections:
                for det in detections:
                    self.stats.detections += 1
                    self.manager.observe(det)

    def flush(self) -> None:
        """Write pending alerts, newly learned baseline facts, rule events and the learning
        clock; pick up rules, baseline facts and learning changes made by other processes."""
        self.manager.flush()
        dirty = self.ctx.baseline.take_dirty()
        events = [event for engine in self._custom for event in engine.take_events()]
        learning = self.ctx.learning
        with self.store.session() as session:
            save_baseline(session, dirty, origin="learning")
            save_rule_events(session, events)
            stored = load_learning_ns(session)
            if stored != self._learning_saved:  # `otwatch baseline start|stop` changed it
                learning.remaining_ns = max(0, stored)
            else:
                save_learning_ns(session, learning.remaining_ns)
            self._learning_saved = learning.remaining_ns
            self._reload_changed(session)

    def _reload_changed(self, session) -> None:  # type: ignore[no-untyped-def]
        version = int(get_state(session, ALERTS_VERSION, 0))
        if version != self._alerts_version:
            self._alerts_version = version
            if self._rules_from_store and self._custom:
                rules = load_custom_rules(session)
                self.ctx.settings[CustomRuleEngine.name] = {"rules": rules}
                for engine in self._custom:
                    engine.load(rules)
                self._subscribe()
        version = int(get_state(session, BASELINE_VERSION, 0))
        if version != self._baseline_version:
            self._baseline_version = version
            baseline = self.ctx.baseline
            for kind, key in session.execute(select(BaselineFact.kind, BaselineFact.key)):
                baseline.kind(kind).add(key)
