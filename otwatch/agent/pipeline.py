"""The packet pipeline shared by live capture and offline replay.

decode (struct) → flow table → engines (by application protocol and packet events) → type
gate → alert manager. One instance per worker; ``process_batch`` is the hot path, so it binds what
it needs to locals and calls only the engines subscribed to what the packet is.

:class:`PacketPath` is everything up to the detections (no store): unit tests drive one engine
through it exactly as the pipeline does. :class:`Pipeline` adds the store, the baseline and
the alert manager.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from otwatch.agent.decode.flows import DEFAULT_MAX_FLOWS, Flow, FlowTable
from otwatch.agent.decode.headers import L3_ARP, decode
from otwatch.agent.engines.base import EVENT_TAGS, Engine, EngineContext, NetworkScope
from otwatch.agent.engines.custom_rules import CustomRuleEngine
from otwatch.agent.engines.detection import Detection, DetectionFactory, Repeat
from otwatch.agent.engines.gate import split_settings
from otwatch.agent.engines.registry import ENGINES
from otwatch.agent.inventory.engine import InventoryEngine
from otwatch.agent.store.baseline import (
    BASELINE_VERSION,
    load_baseline,
    load_learning_ns,
    save_baseline,
    save_learning_ns,
)
from otwatch.agent.store.db import Store
from otwatch.agent.store.devices import save_devices
from otwatch.agent.store.models import BaselineFact
from otwatch.agent.store.rules import load_custom_rules, save_rule_events
from otwatch.agent.store.state import ALERTS_VERSION, get_state
from otwatch.alerts.catalog import Catalog

__all__ = ["PacketPath", "Pipeline", "PipelineStats"]

log = logging.getLogger(__name__)

_SYN, _ACK = 0x02, 0x10
# Event bits of the routing key, in the order of ``EVENT_TAGS``.
_EV_SYN, _EV_SYNACK, _EV_UDP, _EV_ICMP, _EV_ARP, _EV_L2, _EV_IP, _EV_FLOW, _EV_DATA = (
    1 << i for i in range(len(EVENT_TAGS))
)
_FRESH_EVENTS = (0, _EV_FLOW, _EV_DATA, _EV_FLOW | _EV_DATA)  # by FlowTable.fresh bits
TICK_NS = 1_000_000_000
"""Engines' ``tick`` runs about once per second of traffic time (and of wall time when the
live capture loop calls :meth:`Pipeline.tick` while idle)."""
_EVENT_KEYS = 1 << len(EVENT_TAGS)
FLOW_REFRESH_NS = 60 * TICK_NS
"""How often a long-lived flow's directions count as new again (``EVENT_FLOW``)."""
Observe = Callable[..., list[Detection] | Repeat | None]
RepeatSink = Callable[[Detection, int], object]
"""Takes a detection raised again unchanged but for its time (the second argument)."""


@dataclass(slots=True)
class PipelineStats:
    packets: int = 0
    bytes: int = 0
    malformed: int = 0
    detections: int = 0
    disabled: int = 0
    """Detections of alert types that are off (the spec's ``*`` types unless enabled)."""
    engine_errors: int = 0


class PacketPath:
    """Decode, flows, routing to engines, the type gate; detections go to ``sink``."""

    def __init__(
        self,
        ctx: EngineContext,
        engines: Sequence[type[Engine]],
        sink: Callable[[Detection], Any],
        *,
        max_flows: int = DEFAULT_MAX_FLOWS,
        repeat_sink: RepeatSink | None = None,
    ) -> None:
        ctx.settings, self.enabled_types = split_settings(engines, ctx.settings)
        self.ctx = ctx
        self._sink = sink
        self._repeat_sink = repeat_sink or self._rebuild
        self._noted: frozenset[str] = frozenset()
        """Types whose repeats ``_note`` sees whole, with their new time, before the sink."""
        self._note: Callable[[Detection], object] = sink
        self.flows = FlowTable(max_flows)
        ctx.flows = self.flows
        self.engines = [engine_cls(ctx) for engine_cls in engines]
        self._tickers = [
            (engine.name, engine.tick)
            for engine in self.engines
            if type(engine).tick is not Engine.tick
        ]
        self._next_tick_ns = 0
        self._tick_floor_ns = 0
        self._interface: str | None = ctx.interface
        self._next_refresh_ns = 0
        self._reset_routes()
        self._interface_last = ctx.interface_last_ns
        self.stats = PipelineStats()
        self._error_logged: set[str] = set()

    def _reset_routes(self) -> None:
        """Forget who is called for what: routes are rebuilt from each engine's ``apps`` as
        packets need them (an engine may change its own, e.g. the custom-rule engine with no
        rules subscribes to nothing)."""
        self._routes: dict[str | None, list[tuple[Observe, ...] | None]] = {}
        """app -> route per event bit set, filled as packets need them."""

    def _route(self, app: str | None, events: int) -> tuple[Observe, ...]:
        """The engines, in registry order, for a packet of ``app`` carrying ``events``."""
        tags = {tag for i, tag in enumerate(EVENT_TAGS) if events >> i & 1}
        if app is not None:
            tags.add(app)
        return tuple(
            engine.observe
            for engine in self.engines
            if engine.apps is None or not tags.isdisjoint(engine.apps)
        )

    def start_segment(self) -> None:
        """A new file or capture session begins: time gaps before it do not count as learning."""
        self.catch_up_learning()
        self.ctx.learning.restart_segment()
        self._next_tick_ns = self._tick_floor_ns = 0
        self._next_refresh_ns = 0
        for engine in self.engines:
            engine.restart_segment()

    def process(
        self, ts_ns: int, wire_len: int, linktype: int, data: bytes, interface: str | None = None
    ) -> None:
        """One frame: :meth:`process_batch` of one."""
        self.process_batch(((ts_ns, wire_len, linktype, data),), interface)

    def process_batch(
        self, frames: Iterable[tuple[int, int, int, bytes]], interface: str | None = None
    ) -> None:
        """Frames ``(ts_ns, wire_len, linktype, data)`` of one interface, in order. The hot
        loop: what it needs per frame is bound to locals once per batch."""
        if interface is not self._interface:
            self._interface = self.ctx.interface = interface
        stats = self.stats
        interface_last = self._interface_last
        flows = self.flows
        lookup = flows.lookup
        emit = self._emit
        for ts_ns, wire_len, linktype, data in frames:
            stats.packets += 1
            stats.bytes += wire_len
            if ts_ns >= self._next_tick_ns or ts_ns < self._tick_floor_ns:
                # once per second of traffic, or after the clock went back: learning time
                # counts at this resolution (backward steps never count), then engines look
                # for silence
                self.ctx.learning.advance(ts_ns)
                self.tick(ts_ns)
            interface_last[interface] = ts_ns
            rec = decode(ts_ns, wire_len, linktype, data)
            if rec.malformed is not None:
                stats.malformed += 1
            sport = rec.sport
            flow: Flow | None
            if sport is not None and rec.src_ip is not None:
                flags = rec.tcp_flags
                if rec.ip_proto == 17:
                    events = _EV_UDP
                elif flags is not None and flags & _SYN:
                    events = _EV_SYNACK if flags & _ACK else _EV_SYN
                else:
                    events = 0
                # the decoder sets dst_ip, dport and ip_proto whenever it sets sport: testing
                # them again per packet would only serve the type checker
                flow = lookup(
                    rec.src_ip, sport, rec.dst_ip, rec.dport, rec.ip_proto, ts_ns, wire_len, flags,  # type: ignore[arg-type]
                    rec.payload,
                )  # fmt: skip
                app = flow.app
                fresh = flows.fresh
                if fresh:
                    events |= _FRESH_EVENTS[fresh]
            else:
                flow = app = None
                if rec.icmp_type is not None:
                    events = _EV_ICMP
                elif rec.src_ip is not None:
                    events = _EV_IP
                elif rec.l3 == L3_ARP:
                    events = _EV_ARP
                else:
                    events = _EV_L2
            routes = self._routes.get(app)
            if routes is None:
                routes = self._routes[app] = [None] * _EVENT_KEYS
            route = routes[events]
            if route is None:
                route = routes[events] = self._route(app, events)
            for observe in route:
                try:
                    detections = observe(rec, flow)
                except Exception:  # an engine bug must not stop capture
                    self._failed(observe.__self__.name, "a packet")  # type: ignore[attr-defined]  # bound method of an Engine
                    continue
                if detections:
                    emit(detections)

    def catch_up_learning(self) -> None:
        """Count learning time up to the latest packet (``process`` counts it once a second)."""
        last = self._interface_last.get(self._interface)
        if last is not None:
            self.ctx.learning.advance(last)

    def _emit(self, detections: list[Detection] | Repeat) -> None:
        enabled = self.enabled_types
        stats = self.stats
        if isinstance(detections, Repeat):
            # each detection again at a new time: counted as if built, folded by the sink
            repeat, ts_ns, noted = self._repeat_sink, detections.ts_ns, self._noted
            for det in detections.detections:
                if det.type_id in enabled:
                    stats.detections += 1
                    if det.type_id in noted:
                        self._note(det._replace(ts_ns=ts_ns))
                    repeat(det, ts_ns)
                else:
                    stats.disabled += 1
            return
        sink = self._sink
        for det in detections:
            if det.type_id in enabled:
                stats.detections += 1
                sink(det)
            else:
                stats.disabled += 1

    def _rebuild(self, det: Detection, ts_ns: int) -> object:
        """The repeat sink of a sink that takes whole detections only: build it again."""
        return self._sink(det._replace(ts_ns=ts_ns))

    def _failed(self, name: str, what: str) -> None:
        self.stats.engine_errors += 1
        if name not in self._error_logged:
            self._error_logged.add(name)
            log.exception("engine %s failed on %s; counting further failures", name, what)

    def tick(self, now_ns: int) -> None:
        """Let engines detect absence (timeouts, silence) at ``now_ns``; the capture loop calls
        this with wall time while no packets arrive, ``process`` with traffic time."""
        self._next_tick_ns = now_ns + TICK_NS
        self._tick_floor_ns = now_ns - TICK_NS
        if now_ns >= self._next_refresh_ns or now_ns < self._next_refresh_ns - FLOW_REFRESH_NS:
            if self._next_refresh_ns:
                self.flows.refresh()
            self._next_refresh_ns = now_ns + FLOW_REFRESH_NS
        for name, tick in self._tickers:
            try:
                detections = tick(now_ns)
            except Exception:  # an engine bug must not stop capture
                self._failed(name, "a tick")
                continue
            if detections:
                self._emit(detections)


class DetectionSink(Protocol):
    """Where the pipeline sends detections: the ``AlertManager``, or a worker's
    ``ForwardingManager`` that batches them to the collector process."""

    @property
    def store(self) -> Store: ...

    @property
    def catalog(self) -> Catalog: ...

    def observe(self, det: Detection, /) -> object: ...

    def repeat(self, det: Detection, ts_ns: int, /) -> object:
        """``observe(det)`` with ``det.ts_ns`` replaced by ``ts_ns``."""
        ...

    def flush(self) -> object: ...


class Pipeline(PacketPath):
    """The packet path with the sensor store: baseline, learning clock, custom rules, alerts."""

    def __init__(
        self,
        manager: DetectionSink,
        *,
        learning_period_ns: int | None = None,
        ot_subnets: tuple[str, ...] = (),
        settings: dict | None = None,
        engines: tuple[type[Engine], ...] = ENGINES,
        max_flows: int = DEFAULT_MAX_FLOWS,
        inventory: bool = True,
    ) -> None:
        self.manager = manager
        self.store = manager.store
        settings = dict(settings or {})
        custom = dict(settings.get(CustomRuleEngine.name) or {})
        self._rules_from_store = "rules" not in custom
        with self.store.session() as session:
            baseline = load_baseline(session)
            remaining = load_learning_ns(session)
            if learning_period_ns is not None:
                remaining = learning_period_ns
                save_learning_ns(session, remaining)
            self._alerts_version = int(get_state(session, ALERTS_VERSION, 0))
            self._baseline_version = int(get_state(session, BASELINE_VERSION, 0))
            if self._rules_from_store:
                settings[CustomRuleEngine.name] = {**custom, "rules": load_custom_rules(session)}
        self._learning_saved = remaining
        from otwatch.agent.engines.baseline import LearningClock

        ctx = EngineContext(
            factory=DetectionFactory(manager.catalog),
            baseline=baseline,
            learning=LearningClock(remaining),
            scope=NetworkScope(ot_subnets),
            settings=settings,
        )
        if inventory:
            engines = (*engines, InventoryEngine)
        super().__init__(
            ctx, engines, manager.observe, max_flows=max_flows, repeat_sink=manager.repeat
        )
        self._custom = [e for e in self.engines if isinstance(e, CustomRuleEngine)]
        self.inventory = next((e for e in self.engines if isinstance(e, InventoryEngine)), None)
        if self.inventory is not None:
            note, observe = self.inventory.note_detection, manager.observe

            def sink(det: Detection) -> object:
                note(det)
                return observe(det)

            self._sink = sink
            self._noted, self._note = self.inventory.noted_types, note

    def flush(self) -> None:
        """Write pending alerts, newly learned baseline facts, rule events and the learning
        clock; pick up rules, baseline facts and learning changes made by other processes."""
        self.catch_up_learning()
        self.manager.flush()
        dirty = self.ctx.baseline.take_dirty()
        events = [event for engine in self._custom for event in engine.take_events()]
        learning = self.ctx.learning
        devices = []
        if self.inventory is not None:
            self.inventory.fold(self.flows)
            devices = self.inventory.table.take_dirty()
        with self.store.session() as session:
            save_baseline(session, dirty, origin="learning")
            if devices:
                learned = self.ctx.baseline.kind("device")
                save_devices(session, devices, learned, self._last_ns())
            save_rule_events(session, events)
            stored = load_learning_ns(session)
            if stored != self._learning_saved:  # `otwatch baseline start|stop` changed it
                learning.remaining_ns = max(0, stored)
            else:
                save_learning_ns(session, learning.remaining_ns)
            self._learning_saved = learning.remaining_ns
            self._reload_changed(session)

    def _last_ns(self) -> int:
        return max(self._interface_last.values(), default=0)

    def _reload_changed(self, session: Session) -> None:
        version = int(get_state(session, ALERTS_VERSION, 0))
        if version != self._alerts_version:
            self._alerts_version = version
            if self._rules_from_store and self._custom:
                rules = load_custom_rules(session)
                self.ctx.settings[CustomRuleEngine.name] = {"rules": rules}
                for engine in self._custom:
                    engine.load(rules)
                self._reset_routes()
        version = int(get_state(session, BASELINE_VERSION, 0))
        if version != self._baseline_version:
            self._baseline_version = version
            baseline = self.ctx.baseline
            for kind, key in session.execute(select(BaselineFact.kind, BaselineFact.key)):
                baseline.merge(kind, key)
