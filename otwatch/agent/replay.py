"""Offline replay: capture files through the live pipeline, in order, into the sensor store."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.capture.pcapfile import CaptureFile, open_capture
from otwatch.agent.catalog import load_catalog
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.sensor import resolve_identity
from otwatch.agent.store.db import Store

__all__ = ["ReplaySummary", "replay"]

FLUSH_EVERY_PACKETS = 250_000


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
    learning_remaining_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    """One line per file that ended early (truncated or corrupt); its packets still count."""

    def as_dict(self) -> dict:
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "alerts_new": self.alerts_new,
            "alerts_updated": self.alerts_updated,
            "seconds": round(self.seconds, 3),
            "files": self.files,
            "malformed": self.malformed,
            "detections": self.detections,
            "suppressed": self.suppressed,
            "learning_remaining_s": round(self.learning_remaining_s, 3),
            "problems": self.problems,
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
) -> ReplaySummary:
    """Replay ``paths`` in order. Every file is opened (and its header checked) before any
    packet is processed, so a bad argument fails without touching the store."""
    captures: list[CaptureFile] = []
    try:
        for path in paths:
            captures.append(open_capture(path))
        return _run(captures, store, sensor_id, site, zone, learning_period_ns, progress)
    finally:
        for capture in captures:
            capture.close()


def _run(captures, store, sensor_id, site, zone, learning_period_ns, progress) -> ReplaySummary:
    started = time.perf_counter()
    with store.session() as session:
        identity = resolve_identity(session, sensor_id, site, zone)
    manager = AlertManager(
        store, load_catalog(), sensor_id=identity.sensor_id, site=identity.site, zone=identity.zone
    )
    pipeline = Pipeline(manager, learning_period_ns=learning_period_ns)
    summary = ReplaySummary(files=len(captures))
    process = pipeline.process
    stats = pipeline.stats
    for capture in captures:
        pipeline.start_segment()
        next_flush = stats.packets + FLUSH_EVERY_PACKETS
        for ts_ns, wire_len, linktype, data in capture:
            process(ts_ns, wire_len, linktype, data)
            if stats.packets >= next_flush:
                pipeline.flush()
                next_flush = stats.packets + FLUSH_EVERY_PACKETS
                if progress is not None:
                    progress(str(capture.path), stats.packets)
        if capture.problem:
            summary.problems.append(f"{capture.path}: {capture.problem}")
    pipeline.flush()
    m = manager.stats
    summary.packets, summary.bytes = stats.packets, stats.bytes
    summary.malformed, summary.detections = stats.malformed, stats.detections
    summary.alerts_new, summary.alerts_updated = m.alerts_new, m.alerts_updated
    summary.suppressed = m.learned + m.muted + m.excluded
    summary.learning_remaining_s = pipeline.ctx.learning.remaining_ns / 1e9
    summary.seconds = time.perf_counter() - started
    return summary
