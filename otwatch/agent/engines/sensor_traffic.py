"""No Traffic Detected on Sensor Interface and Traffic Detected on Sensor Interface
(operational).

Each capture interface (``None`` for offline replay, reported as ``default``) that has carried
traffic and then stays silent for ``silence_s`` (default 120 s) raises *No Traffic*; the
first packet after that raises *Traffic Detected*. Silence is noticed on ticks, which the
pipeline drives by traffic time and the live capture loop by wall time, so a gap inside a
capture file is reported as it would have been live (at last packet + ``silence_s``).
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.detection import Detection

__all__ = ["SensorTrafficEngine"]

NO_TRAFFIC = "no_traffic_detected_on_sensor_interface"
TRAFFIC_BACK = "traffic_detected_on_sensor_interface"
DEFAULT_INTERFACE = "default"


@dataclass(frozen=True)
class Config:
    silence_s: float = 120.0


class SensorTrafficEngine(Engine):
    name = "sensor_traffic"
    type_ids = frozenset({NO_TRAFFIC, TRAFFIC_BACK})
    apps = None

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._silence_ns = int(self.config.silence_s * 1e9)
        self.last: dict[str | None, int] = {}
        self.silent: dict[str | None, int] = {}
        """interface -> when its silence was reported"""
        self._current: str | None = None
        self._current_ns = 0
        """The interface of the latest packet and its time (folded into ``last`` lazily)."""

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        interface = self.ctx.interface
        if interface is not self._current:
            if self._current_ns:
                self.last[self._current] = self._current_ns
            self._current = interface
        self._current_ns = rec.ts_ns
        if not self.silent or interface not in self.silent:
            return None
        since = self.silent.pop(interface)
        name = interface or DEFAULT_INTERFACE
        return [
            self.detect(
                TRAFFIC_BACK,
                rec.ts_ns,
                f"sensor interface {name} sees traffic again after "
                f"{(rec.ts_ns - since) / 1e9 + self.config.silence_s:,.0f} s of silence",
                interface=name,
            )
        ]

    def tick(self, now_ns: int) -> list[Detection] | None:
        if self._current_ns:
            self.last[self._current] = self._current_ns
        out = None
        for interface, last in self.last.items():
            if interface in self.silent or now_ns - last < self._silence_ns:
                continue
            at = last + self._silence_ns
            self.silent[interface] = at
            name = interface or DEFAULT_INTERFACE
            out = out or []
            out.append(
                self.detect(
                    NO_TRAFFIC,
                    at,
                    f"sensor interface {name} has seen no traffic for {self.config.silence_s:g} s",
                    interface=name,
                )
            )
        return out

    def restart_segment(self) -> None:
        self.last.clear()
        self.silent.clear()
        self._current, self._current_ns = None, 0
