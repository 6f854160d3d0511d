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

Per packet this costs one dict lookup keyed by the flow object (the flow table already counts
the bytes); minutes are closed together when traffic time or a tick enters the next minute.
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
    """Flows counted per minute, and learned devices/pairs kept in memory."""


def _parse(keys: set[str], limit: int) -> dict[str, int]:
    levels: dict[str, int] = {}
    for key in keys:
        who, _, level = key.rpartition("|")
        if who and level.isdigit() and (who in levels or len(levels) < limit):
            levels[who] = max(levels.get(who, 0), int(level))
    return levels


class BandwidthEngine(Engine):
    name = "bandwidth"
    type_ids = frozenset({DEVICE_BW, CHANNEL_BW})
    apps = None

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._bucket_ns = int(c.bucket_s * 1e9)
        self.device_levels = _parse(ctx.baseline.kind(DEVICE_KIND), c.max_tracked)
        self.channel_levels = _parse(ctx.baseline.kind(CHANNEL_KIND), c.max_tracked)
        self.bucket = -1
        self.starts: dict[Flow, int] = {}
        """flow -> its byte count when this minute began"""
        self.dropped = 0

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if flow is None:
            return None
        out = None
        bucket = rec.ts_ns // self._bucket_ns
        if bucket > self.bucket:
            out = self._close(bucket, flow, rec.wire_len)
        starts = self.starts
        if flow not in starts:
            if len(starts) < self.config.max_tracked:
                starts[flow] = flow.bytes - rec.wire_len
            else:
                self.dropped += 1
        return out

    def tick(self, now_ns: int) -> list[Detection] | None:
        bucket = now_ns // self._bucket_ns
        return self._close(bucket, None, 0) if bucket > self.bucket and self.starts else None

    def restart_segment(self) -> None:
        self.starts.clear()
        self.bucket = -1

    def _close(self, bucket: int, current: Flow | None, size: int) -> list[Detection] | None:
        """Judge (or learn) the minute that just ended and start ``bucket``. ``current`` is
        the flow of the packet that opened the new minute; its ``size`` bytes are not part of
        the old one."""
        ended, starts = self.bucket, self.starts
        self.bucket, self.starts = bucket, {}
        if ended < 0 or not starts:
            return None
        devices: dict[str, int] = {}
        channels: dict[str, int] = {}
        for flow, start in starts.items():
            volume = flow.bytes - start - (size if flow is current else 0)
            if volume <= 0:
                continue
            for device in (flow.client, flow.server):
                devices[device] = devices.get(device, 0) + volume
            pair = f"{flow.client}>{flow.server}"
            channels[pair] = channels.get(pair, 0) + volume
        end_ns = (ended + 1) * self._bucket_ns
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
