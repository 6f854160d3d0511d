"""What ``otwatch pcap status`` shows: ring and evidence usage from the index, capture
counters (kernel drops, disk-full events) from the state the running agent saves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from otwatch.agent.capture.ring import EVICTED_STATE
from otwatch.agent.store.db import Store
from otwatch.agent.store.models_pcap import PcapEvidence, PcapSegment
from otwatch.agent.store.state import get_state

__all__ = ["CAPTURE_STATE", "format_bytes", "pcap_status"]

CAPTURE_STATE = "capture_status"
"""sensor_state key the live agent refreshes every few seconds (see ``agent.daemon``)."""


def format_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def pcap_status(store: Store) -> dict[str, Any]:
    """Ring, evidence and capture figures as one JSON-able dict."""
    with store.session() as session:
        segs = session.execute(
            select(
                func.count(PcapSegment.id),
                func.coalesce(func.sum(PcapSegment.bytes), 0),
                func.coalesce(func.sum(PcapSegment.packets), 0),
                func.min(PcapSegment.first_ns),
                func.max(PcapSegment.last_ns),
            )
        ).one()
        open_segments = session.scalars(
            select(func.count(PcapSegment.id)).where(PcapSegment.closed.is_(False))
        ).one()
        by_status = dict(
            session.execute(
                select(PcapEvidence.status, func.count()).group_by(PcapEvidence.status)
            ).all()
        )
        evidence_bytes = session.scalar(
            select(func.coalesce(func.sum(PcapEvidence.bytes), 0)).where(
                PcapEvidence.path.is_not(None)
            )
        )
        capture = get_state(session, CAPTURE_STATE, None)
        evicted = get_state(session, EVICTED_STATE, None)
    count, size, packets, oldest, newest = segs
    capture = capture or {}
    interfaces = capture.get("interfaces", {})
    return {
        "ring": {
            "segments": int(count),
            "open_segments": int(open_segments),
            "bytes": int(size),
            "packets": int(packets),
            "oldest_ns": oldest,
            "newest_ns": newest,
            "budget_bytes": capture.get("ring_budget_bytes"),
            "evicted_until_ns": (evicted or {}).get("until_ns"),
            "last_eviction_ns": (evicted or {}).get("at_ns"),
            "written_frames": (capture.get("ring") or {}).get("packets"),
            "dropped_frames": (capture.get("ring") or {}).get("dropped", 0),
            "disk_full": (capture.get("ring") or {}).get("disk_full", 0),
            "last_disk_full_ns": (capture.get("ring") or {}).get("last_disk_full_ns"),
        },
        "evidence": {
            "files": int(by_status.get("ready", 0)),
            "bytes": int(evidence_bytes or 0),
            "by_status": {k: int(v) for k, v in sorted(by_status.items())},
            # windows waiting to be cut: not complete yet, or due and waiting for a pass
            "backlog": int(by_status.get("pending", 0)),
            "budget_bytes": (capture.get("evidence") or {}).get("max_bytes"),
        },
        "capture": {
            "state": capture.get("state", "never run"),
            "pid": capture.get("pid"),
            "updated_ns": capture.get("updated_ns"),
            "workers": capture.get("workers"),
            "received": sum(i.get("received", 0) for i in interfaces.values()),
            "kernel_drops": sum(i.get("kernel_drops", 0) for i in interfaces.values()),
            "interfaces": interfaces,
            "notes": capture.get("notes", []),
        },
    }
