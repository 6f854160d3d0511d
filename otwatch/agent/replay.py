"""Offline replay: capture files through the live pipeline, in order, into the sensor store.

With a ring configuration, every frame is also written to the rolling PCAP ring (writer
``replay``) and, at the end, evidence is cut for the alerts the replay raised or updated, so
``otwatch pcap get`` works on offline data too. Without one, replay pays nothing for it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from otwatch.agent.alerts import build
from otwatch.agent.alerts.ratelimit import RateLimit
from otwatch.agent.capture.config import EvidenceConfig, RingConfig
from otwatch.agent.capture.evidence import Evidence
from otwatch.agent.capture.pcapfile import CaptureFile, open_capture
from otwatch.agent.capture.ring import RingWriter
from otwatch.agent.capture.ring_repair import repair_ring
from otwatch.agent.engines.base import Engine
from otwatch.agent.engines.registry import ENGINES
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.sensor import resolve_identity
from otwatch.agent.store.db import Store
from otwatch.gctune import collect_rarely

if TYPE_CHECKING:
    from otwatch.config import Config

__all__ = ["DetectionOptions", "ReplaySummary", "replay"]

FLUSH_EVERY_PACKETS = 250_000
_CHUNK = 1024


@dataclass(frozen=True)
class DetectionOptions:
    """What the configuration says about detection, as replay and the agent use it."""

    engines: tuple[type[Engine], ...] = ENGINES
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    ot_subnets: tuple[str, ...] = ()
    alert_rate: RateLimit | None = None
    """None: the manager's default."""

    @classmethod
    def from_config(cls, config: Config) -> DetectionOptions:
        """Engines (the registry's, minus ``engines.disabled``), their settings (thresholds,
        ``enable``/``disable`` of alert types, IOC files), plant subnets and the alert rate
        limit."""
        return cls(
            engines=tuple(e for e in ENGINES if e.name not in config.engines.disabled),
            settings={name: dict(table) for name, table in config.engines.settings.items()},
            ot_subnets=tuple(config.detection.ot_subnets),
            alert_rate=RateLimit.from_section(config.detection),
        )


@dataclass
class ReplaySummary:
    files: int = 0
    packets: int = 0
    bytes: int = 0
    malformed: int = 0
    detections: int = 0
    alerts_new: int = 0
    alerts_updated: int = 0
    suppressed: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    """CPU time of this process during ``seconds`` (user + system): on a busy machine,
    ``packets / cpu_s`` is the one-core rate that wall time cannot show."""
    learning_remaining_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    """One line per file that ended early (truncated or corrupt); its packets still count."""
    ring_packets: int | None = None
    """Frames written to the PCAP ring (None: ring not used)."""
    evidence_files: int = 0
    evidence_s: float = 0.0
    """Part of ``seconds`` spent cutting evidence at the end (ring only)."""
    evidence_cpu_s: float = 0.0
    """CPU time of that part (this process, user + system)."""
    peak_rss_bytes: int | None = None
    """This process's peak resident memory (Linux ``VmHWM``; None elsewhere): what a sensor
    needs for such a capture. Unlike ``getrusage`` it does not include what the parent had
    resident when it started this process."""

    def as_dict(self) -> dict:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "alerts_new": self.alerts_new,
            "alerts_updated": self.alerts_updated,
            "seconds": round(self.seconds, 3),
            "cpu_s": round(self.cpu_s, 3),
            "files": self.files,
            "malformed": self.malformed,
            "detections": self.detections,
            "suppressed": self.suppressed,
            "learning_remaining_s": round(self.learning_remaining_s, 3),
            "problems": self.problems,
            "ring_packets": self.ring_packets,
            "evidence_files": self.evidence_files,
            "evidence_s": round(self.evidence_s, 3),
            "evidence_cpu_s": round(self.evidence_cpu_s, 3),
            "peak_rss_bytes": self.peak_rss_bytes,
        }


def replay(
    paths: Sequence[str | os.PathLike[str]],
    store: Store,
    *,
    sensor_id: str | None = None,
    site: str | None = None,
    zone: str | None = None,
    learning_period_ns: int | None = None,
    progress: Callable[[str, int], None] | None = None,
    ring: RingConfig | None = None,
    evidence: EvidenceConfig | None = None,
    detection: DetectionOptions | None = None,
) -> ReplaySummary:
    """Replay ``paths`` in order. Every file is opened (and its header checked) before any
    packet is processed, so a bad argument fails without touching the store. ``ring`` also
    writes every frame to the PCAP ring; ``evidence`` (with ``ring``) then cuts evidence.
    ``detection`` carries the configuration's engines, thresholds and plant subnets, as the
    live agent uses them."""
    captures: list[CaptureFile] = []
    try:
        for path in paths:
            captures.append(open_capture(path))
        return _run(
            captures, store, sensor_id, site, zone, learning_period_ns, progress, ring, evidence,
            detection or DetectionOptions(),
        )  # fmt: skip
    finally:
        for capture in captures:
            capture.close()


def _run(
    captures, store, sensor_id, site, zone, learning_period_ns, progress, ring_config, evidence,
    detection,
) -> ReplaySummary:  # fmt: skip
    started = time.perf_counter()
    cpu_started = time.process_time()
    with store.session() as session:
        identity = resolve_identity(session, sensor_id, site, zone)
    manager = build.alert_manager(store, identity, rate_limit=detection.alert_rate)
    pipeline = Pipeline(
        manager,
        learning_period_ns=learning_period_ns,
        ot_subnets=detection.ot_subnets,
        settings=detection.settings,
        engines=detection.engines,
    )
    summary = ReplaySummary(files=len(captures))
    ring = None
    if ring_config is not None:
        repair_ring(store, ring_config.directory)
        ring = RingWriter(store, ring_config, "replay")
    with collect_rarely():
        for capture in captures:
            pipeline.start_segment()
            _replay_file(capture, pipeline, ring, progress)
            if capture.problem:
                summary.problems.append(f"{capture.path}: {capture.problem}")
    pipeline.flush()
    if ring is not None:
        ring.close()
        summary.ring_packets = ring.stats.packets
        if evidence is not None:
            cut_started, cut_cpu = time.perf_counter(), time.process_time()
            cutter = Evidence(store, evidence)
            cutter.schedule(manager.stats.created | manager.stats.updated)
            cutter.extract_due(force=True)
            summary.evidence_files = cutter.extracted
            summary.evidence_s = time.perf_counter() - cut_started
            summary.evidence_cpu_s = time.process_time() - cut_cpu
    m, stats = manager.stats, pipeline.stats
    summary.packets, summary.bytes = stats.packets, stats.bytes
    summary.malformed, summary.detections = stats.malformed, stats.detections
    summary.alerts_new, summary.alerts_updated = m.alerts_new, m.alerts_updated
    summary.suppressed = m.learned + m.muted + m.excluded
    summary.learning_remaining_s = pipeline.ctx.learning.remaining_ns / 1e9
    summary.seconds = time.perf_counter() - started
    summary.cpu_s = time.process_time() - cpu_started
    summary.peak_rss_bytes = peak_rss_bytes()
    return summary


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process since it started (``VmHWM``), or None."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return None


def _replay_file(
    capture: CaptureFile,
    pipeline: Pipeline,
    ring: RingWriter | None,
    progress: Callable[[str, int], None] | None,
) -> None:
    """The replay loop in chunks: each chunk goes to the ring (if any) in one call — the
    file's own record bytes when the formats match — then through the pipeline."""
    process = pipeline.process_batch
    stats = pipeline.stats
    nanosecond = capture.nanosecond
    next_flush = stats.packets + FLUSH_EVERY_PACKETS
    for chunk, raw in capture.chunks(_CHUNK):
        if ring is None:
            pass
        elif raw is not None:
            ring.write_raw(chunk, raw, chunk[0][2], nanosecond)
        elif capture.format == "pcap":
            ring.write_batch(chunk, chunk[0][2], nanosecond)
        else:
            for ts_ns, wire_len, linktype, data in chunk:
                ring.write(ts_ns, wire_len, linktype, data, nanosecond)
        process(chunk)
        if stats.packets >= next_flush:
            pipeline.flush()
            if ring is not None:
                ring.tick()
            next_flush = stats.packets + FLUSH_EVERY_PACKETS
            if progress is not None:
                progress(str(capture.path), stats.packets)
