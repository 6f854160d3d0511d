"""Abnormal Periodic Behavior In Communication Channel and Inactive Communication Channel
(anomaly): polling that changes its rhythm, or stops.

A channel is ``client>server:port/proto``; its events are client-to-server packets with
payload, a burst closer than ``burst_gap_s`` counting once. While learning, the intervals
between events are sampled; when learning ends, a channel with at least ``min_samples``
intervals, ``tolerance``-tight around their median (``regular_share`` of them within
+-tolerance) and a median of at least ``min_period_s``, is learned as periodic (baseline kind
``periodic``, key ``channel|period_ms``).

Afterwards, for a periodic channel:

- *Abnormal Periodic Behavior*: the median of its last ``recent`` intervals is ``factor``
  times faster or slower than the learned period (reported once until it is back to normal);
- *Inactive Communication Channel*: no event for ``max(inactive_s, inactive_periods x
  period)`` (spec: 1 min), noticed on ticks (reported once until the channel talks again).
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.detection import Detection

__all__ = ["PeriodicEngine"]

ABNORMAL_PERIOD = "abnormal_periodic_behavior_in_communication_channel"
INACTIVE = "inactive_communication_channel"
PERIODIC_KIND = "periodic"
_PROTO = {6: "tcp", 17: "udp"}
_PROTO_NUMBER = {"tcp": 6, "udp": 17}


@dataclass(frozen=True)
class Config:
    burst_gap_s: float = 0.05
    min_samples: int = 10
    tolerance: float = 0.25
    regular_share: float = 0.8
    min_period_s: float = 0.2
    recent: int = 8
    factor: float = 2.0
    inactive_s: float = 60.0
    inactive_periods: float = 3.0
    samples: int = 64
    """Intervals kept per channel while learning."""
    max_channels: int = 5_000


class _Channel:
    __slots__ = ("abnormal", "dst", "inactive", "intervals", "last_ns", "name", "period_ns", "src")

    def __init__(self, src: str, dst: str, port: int, proto: int, period_ns: int = 0) -> None:
        self.src, self.dst = src, dst
        self.name = f"{src}>{dst}:{port}/{_PROTO.get(proto, proto)}"
        self.period_ns = period_ns
        self.last_ns = 0
        self.intervals: list[int] = []
        self.abnormal = self.inactive = False


def _median(values: list[int]) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


class PeriodicEngine(Engine):
    name = "periodic"
    settings_class = Config
    type_ids = frozenset({ABNORMAL_PERIOD, INACTIVE})
    apps = None

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._gap_ns = int(c.burst_gap_s * 1e9)
        self.channels: dict[tuple[str, str, int, int], _Channel] = {}
        for fact in ctx.baseline.kind(PERIODIC_KIND):
            key = _parse(fact)
            if key is not None and len(self.channels) < c.max_channels:
                src, dst, port, proto, period_ms = key
                self.channels[(src, dst, port, proto)] = _Channel(
                    src, dst, port, proto, period_ms * 1_000_000
                )
        self._learning = ctx.learning.active

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if flow is None or not rec.payload or rec.src_ip != flow.client:
            return None
        state = flow.state
        if state is not None:
            # the flow's channel, remembered with the channel table it came from (learning's
            # end replaces the table): a packet within the burst gap costs this much only
            cached = state.get("periodic")
            if cached is not None and cached[1] is self.channels:
                last = cached[0].last_ns
                if last and rec.ts_ns - last < self._gap_ns:
                    return None
        learning = self.ctx.learning.active
        if not learning:
            if self._learning:
                self._finish_learning(rec.ts_ns)
            if not self.channels:
                return None
        key = (flow.client, flow.server, flow.server_port, flow.proto)
        channel = self.channels.get(key)
        ts = rec.ts_ns
        if channel is not None:
            if state is None:
                state = flow.state = {}
            state["periodic"] = (channel, self.channels)
        else:
            if not learning or len(self.channels) >= self.config.max_channels:
                return None
            self._learning = True
            channel = self.channels[key] = _Channel(*key)
            channel.last_ns = ts
            return None
        last = channel.last_ns
        if last and ts - last < self._gap_ns:
            return None
        channel.last_ns = ts
        if not last or ts <= last:
            return None
        out = None
        if channel.inactive:
            channel.inactive = False
        interval = ts - last
        c = self.config
        if self.ctx.learning.active:
            self._learning = True
            if channel.period_ns == 0:
                channel.intervals.append(interval)
                if len(channel.intervals) > c.samples:
                    del channel.intervals[0]
            return None
        if not channel.period_ns:
            return None
        recent = channel.intervals
        recent.append(interval)
        if len(recent) > c.recent:
            del recent[0]
        if len(recent) < c.recent:
            return None
        median = _median(recent)
        ratio = median / channel.period_ns
        if 1 / c.factor < ratio < c.factor:
            channel.abnormal = False
            return None
        if channel.abnormal:
            return None
        channel.abnormal = True
        out = [
            self.detect(
                ABNORMAL_PERIOD,
                ts,
                f"{channel.src} now talks to {channel.name.split('>', 1)[1]} every "
                f"{median / 1e9:.3g} s instead of every {channel.period_ns / 1e9:.3g} s",
                source_address=channel.src,
                destination_address=channel.dst,
                protocol=flow.app,
                period_s=round(channel.period_ns / 1e9, 3),
                observed_s=round(median / 1e9, 3),
            )
        ]
        return out

    def tick(self, now_ns: int) -> list[Detection] | None:
        if self._learning and not self.ctx.learning.active:
            self._finish_learning(now_ns)
        if self.ctx.learning.active:
            return None
        out = None
        c = self.config
        for channel in self.channels.values():
            if not channel.period_ns or channel.inactive:
                continue
            if not channel.last_ns:
                channel.last_ns = now_ns  # first sight since start: the silence starts now
                continue
            limit = max(int(c.inactive_s * 1e9), int(c.inactive_periods * channel.period_ns))
            if now_ns - channel.last_ns < limit:
                continue
            channel.inactive = True
            out = out or []
            out.append(
                self.detect(
                    INACTIVE,
                    channel.last_ns + limit,
                    f"{channel.src} has not talked to {channel.name.split('>', 1)[1]} for "
                    f"{limit / 1e9:g} "
                    f"s; while learning it did every {channel.period_ns / 1e9:.3g} s",
                    source_address=channel.src,
                    destination_address=channel.dst,
                    period_s=round(channel.period_ns / 1e9, 3),
                )
            )
        return out

    def restart_segment(self) -> None:
        for channel in self.channels.values():
            channel.last_ns = 0
            if channel.period_ns:
                channel.intervals.clear()

    def _finish_learning(self, ts_ns: int) -> None:
        """Learning just ended: keep the regular channels, forget the rest."""
        self._learning = False
        c = self.config
        kept: dict[tuple[str, str, int, int], _Channel] = {}
        for key, channel in self.channels.items():
            if channel.period_ns:
                kept[key] = channel
                continue
            samples = channel.intervals
            if len(samples) < c.min_samples:
                continue
            median = _median(samples)
            regular = sum(1 for s in samples if abs(s - median) <= c.tolerance * median)
            if median < c.min_period_s * 1e9 or regular < c.regular_share * len(samples):
                continue
            period_ms = max(1, round(median / 1e6))
            channel.period_ns = period_ms * 1_000_000
            channel.intervals = []
            kept[key] = channel
            self.ctx.baseline.add(PERIODIC_KIND, f"{channel.name}|{period_ms}", ts_ns)
        self.channels = kept


def _parse(fact: str) -> tuple[str, str, int, int, int] | None:
    """``client>server:port/proto|period_ms`` back into its parts (None if malformed)."""
    name, _, period = fact.rpartition("|")
    src, _, rest = name.partition(">")
    server, _, port_proto = rest.rpartition(":")
    port, _, proto = port_proto.partition("/")
    if not (src and server and port.isdigit() and period.isdigit() and proto in _PROTO_NUMBER):
        return None
    return src, server, int(port), _PROTO_NUMBER[proto], int(period)
