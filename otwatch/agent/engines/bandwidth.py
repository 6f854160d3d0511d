"""Abnormal Traffic Bandwidth and Abnormal Traffic Bandwidth Between Devices (anomaly).

Traffic is summed per minute (``bucket_s``) per device (bytes it sent and received) and per
client/server pair (both directions), from the TCP/UDP flows it belongs to. While learning,
each device's and pair's busiest minute is recorded as a power-of-two level (baseline kinds
``bw_device`` / ``bw_channel``, key ``who|level`` where ``level`` is the bit length of the
byte count; a level is added only when it beats the known one, so a device has at most ~40
facts). Afterwards a minute ``margin`` levels or more above the learned one (default 2: at
least twice the learned level's ceiling) and of at least ``min_bytes`` raises an alert.
Devices and pairs not seen while learning are not judged: that is new-device and
new-connection territory.

It costs nothing per packet: the flow table already counts bytes, and on the tick that enters
a new minute every flow's growth since the previous minute is summed (a tick comes at least
once per second, so up to a second of the new minute may count toward the old one; flows
evicted from a full table within the minute are lost).
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.detection import Detection

__all__ = ["BandwidthEngine"]

DEVICE_BW = "abnormal_traffic_bandwidth"
CHANNEL_BW = "abnormal_traffic_bandwidth_between_devices"
DEVICE_KIND, CHANNEL_KIND = "bw_device", "bw_channel"


@dataclass(frozen=True)
class Config:
    bucket_s: float = 60.0
    margin: int = 2
    """Levels (doublings) above the learned busiest minute that count as abnormal."""
    min_bytes: int = 1_000_000
    max_tracked: int = 50_000
    """Learned devices and pairs kept in memory (each)."""


def _parse(keys: set[str], limit: int) -> dict[str, int]:
    levels: dict[str, int] = {}
    for key in keys:
        who, _, level = key.rpartition("|")
        if who and level.isdigit() and (who in levels or len(levels) < limit):
            levels[who] = max(levels.get(who, 0), int(level))
    return levels


class BandwidthEngine(Engine):
    name = "bandwidth"
    settings_class = Config
    type_ids = frozenset({DEVICE_BW, CHANNEL_BW})
    apps = frozenset()  # ticks only: the flow table already counts every packet's bytes

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._bucket_ns = int(c.bucket_s * 1e9)
        self.device_levels = _parse(ctx.baseline.kind(DEVICE_KIND), c.max_tracked)
        self.channel_levels = _parse(ctx.baseline.kind(CHANNEL_KIND), c.max_tracked)
        self.bucket = -1
        self.starts: dict[Flow, int] = {}
        """flow -> its byte count when the current minute began"""

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        return None

    def tick(self, now_ns: int) -> list[Detection] | None:
        bucket = now_ns // self._bucket_ns
        if bucket <= self.bucket or self.ctx.flows is None:
            return None
        out = self._close() if self.bucket >= 0 else None
        self.bucket = bucket
        self.starts = {flow: flow.bytes for flow in self.ctx.flows}
        return out

    def restart_segment(self) -> None:
        self.starts = {}
        self.bucket = -1

    def _close(self) -> list[Detection] | None:
        """Judge (or learn) the minute that just ended, from each flow's byte growth."""
        starts = self.starts
        devices: dict[str, int] = {}
        channels: dict[str, int] = {}
        for flow in self.ctx.flows or ():
            volume = flow.bytes - starts.get(flow, 0)
            if volume <= 0:
                continue
            for device in (flow.client, flow.server):
                devices[device] = devices.get(device, 0) + volume
            pair = f"{flow.client}>{flow.server}"
            channels[pair] = channels.get(pair, 0) + volume
        end_ns = (self.bucket + 1) * self._bucket_ns
        out: list[Detection] = []
        for device, volume in devices.items():
            self._judge(out, DEVICE_KIND, self.device_levels, device, volume, end_ns)
        for pair, volume in channels.items():
            self._judge(out, CHANNEL_KIND, self.channel_levels, pair, volume, end_ns)
        return out or None

    def _judge(
        self,
        out: list[Detection],
        kind: str,
        levels: dict[str, int],
        who: str,
        volume: int,
        end_ns: int,
    ) -> None:
        level = volume.bit_length()
        known = levels.get(who)
        if self.ctx.learning.active:
            if known is None and len(levels) >= self.config.max_tracked:
                return
            if known is None or level > known:
                levels[who] = level
                self.ctx.baseline.add(kind, f"{who}|{level}", end_ns, {"bytes": volume})
            return
        c = self.config
        if known is None or volume < c.min_bytes or level < known + c.margin:
            return
        usual = 1 << known
        if kind == DEVICE_KIND:
            out.append(
                self.detect(
                    DEVICE_BW,
                    end_ns,
                    f"{who} sent and received {volume:,} bytes in {c.bucket_s:g} s; its busiest "
                    f"minute while learning was under {usual:,} bytes",
                    source_address=who,
                    bytes=volume,
                    learned_max=usual,
                )
            )
        else:
            client, server = who.split(">", 1)
            out.append(
                self.detect(
                    CHANNEL_BW,
                    end_ns,
                    f"{client} and {server} exchanged {volume:,} bytes in {c.bucket_s:g} s; "
                    f"while learning it was under {usual:,} bytes a minute",
                    source_address=client,
                    destination_address=server,
                    bytes=volume,
                    learned_max=usual,
                )
            )
