"""No Traffic Detected on Sensor Interface and Traffic Detected on Sensor Interface
(operational).

Each capture interface (``None`` for offline replay, reported as ``default``) that has carried
traffic and then stays silent for ``silence_s`` (default 120 s) raises *No Traffic*; traffic on
it again raises *Traffic Detected*. Works on ticks only, from the pipeline's latest-packet time
per interface (``ctx.interface_last_ns``), so it costs nothing per packet. Ticks come from
traffic time (the pipeline) and wall time (the live capture loop while idle), so a gap inside
a capture file is reported as it would have been live (at last packet + ``silence_s``).
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
    settings_class = Config
    type_ids = frozenset({NO_TRAFFIC, TRAFFIC_BACK})
    apps = frozenset()  # ticks only

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._silence_ns = int(self.config.silence_s * 1e9)
        self.silent: dict[str | None, int] = {}
        """interface -> the latest packet time when its silence was reported"""

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        return None

    def tick(self, now_ns: int) -> list[Detection] | None:
        out = None
        silence = self._silence_ns
        for interface, last in self.ctx.interface_last_ns.items():
            name = interface or DEFAULT_INTERFACE
            since = self.silent.get(interface)
            if since is not None:
                if last == since:
                    continue
                del self.silent[interface]  # packets again
                out = out or []
                out.append(
                    self.detect(
                        TRAFFIC_BACK,
                        last,
                        f"sensor interface {name} sees traffic again after "
                        f"{self.config.silence_s:g}+ s of silence",
                        interface=name,
                    )
                )
                continue
            if now_ns - last < silence:
                continue
            self.silent[interface] = last
            out = out or []
            out.append(
                self.detect(
                    NO_TRAFFIC,
                    last + silence,
                    f"sensor interface {name} has seen no traffic for {self.config.silence_s:g} s",
                    interface=name,
                )
            )
        return out

    def restart_segment(self) -> None:
        self.silent.clear()
        self.ctx.interface_last_ns.clear()
