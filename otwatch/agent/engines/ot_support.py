"""What the industrial-protocol engines share: learned-policy checks, per-flow state,
the standard alert fields of a packet, and the malformed-packet counter.

Conventions of the OT engines (one per protocol family):

- ``source_address``/``destination_address`` are the sender and receiver of the packet that
  shows the event. For *INVD* types ("... Sent to Outstation", "Slave Device Received ...")
  the outstation's reply is the evidence but the offending packet is the primary's request:
  the primary is the source, the secondary the destination. For types about the state of one
  device (outstation restarted, IIN conditions, firmware) that device is the source.
- Types the spec marks off by default (*) are gated by the pipeline (``engines/gate.py``),
  like every other engine's: the engines raise them all.
- Policy types learn into the baseline while learning is active and stay silent then; other
  engines' types fire in learning mode too (the spec suppresses only policy alerts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.counters import RateCounter
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import mac_text

__all__ = [
    "MALFORMED_SESSION",
    "MalformedCounter",
    "OtEngine",
    "Policy",
    "flow_state",
    "packet_fields",
]

MALFORMED_SESSION = "excessive_malformed_packets_in_a_single_session"
_MAX_KEYS = 50_000

T = TypeVar("T")


def packet_fields(rec: PacketRecord, protocol: str, *, reverse: bool = False) -> dict[str, Any]:
    """Standard alert fields of a packet (sender first; ``reverse`` swaps the two ends)."""
    src, dst = rec.src_ip, rec.dst_ip
    smac, dmac = mac_text(rec.src_mac), mac_text(rec.dst_mac)
    if reverse:
        src, dst, smac, dmac = dst, src, dmac, smac
    return {
        "source_address": src,
        "destination_address": dst,
        "source_mac": smac,
        "destination_mac": dmac,
        "protocol": protocol,
    }


def flow_state(flow: Flow | None, key: str, factory: Callable[[], T]) -> T:
    """The engine's state object in ``flow.state`` (created on first use; a throwaway one
    when there is no flow)."""
    if flow is None:
        return factory()
    state = flow.state
    if state is None:
        flow.state = state = {}
    value = state.get(key)
    if value is None:
        state[key] = value = factory()
    return value


class Policy:
    """One kind of learned baseline fact (e.g. ``dnp3_fc``): learned while learning is
    active, a violation afterwards when unknown."""

    __slots__ = ("_known", "ctx", "kind")

    def __init__(self, ctx: EngineContext, kind: str) -> None:
        self.ctx, self.kind = ctx, kind
        self._known = ctx.baseline.kind(kind)

    def __contains__(self, key: str) -> bool:
        return key in self._known

    def violates(self, key: str, ts_ns: int, attrs: dict[str, Any] | None = None) -> bool:
        """True when ``key`` is not in the baseline and learning is over."""
        if key in self._known:
            return False
        if self.ctx.learning.active:
            self.ctx.baseline.add(self.kind, key, ts_ns, attrs)
            return False
        return True


class MalformedCounter:
    """Counts malformed packets per (source, destination, protocol); ``hit`` is True when the
    count reaches the threshold in a window (catalog: 2 per 10 minutes)."""

    __slots__ = ("_counter",)

    def __init__(self, threshold: int = 2, window_s: float = 600.0) -> None:
        self._counter = RateCounter(threshold, int(window_s * 1e9), _MAX_KEYS)

    def hit(self, rec: PacketRecord, protocol: str) -> bool:
        return bool(self._counter.hit((rec.src_ip, rec.dst_ip, protocol), rec.ts_ns))


class OtEngine(Engine):
    """Base of the industrial-protocol engines: a ``Config`` from the engine's settings, the
    set of types it raises, and ``emit``."""

    protocol: ClassVar[str]
    """The alert's ``protocol`` field."""
    config: Any

    def __init__(self, ctx: EngineContext, config_cls: type) -> None:
        super().__init__(ctx)
        self.config = config_cls(**ctx.settings.get(self.name, {}))

    def emit(
        self,
        out: list[Detection],
        type_id: str,
        rec: PacketRecord,
        message: str,
        /,
        *,
        reverse: bool = False,
        **extra: Any,
    ) -> None:
        """Append a detection built from the packet's fields (``reverse`` swaps the ends)."""
        fields = packet_fields(rec, self.protocol, reverse=reverse)
        fields.update(extra)
        out.append(self.detect(type_id, rec.ts_ns, message, **fields))
