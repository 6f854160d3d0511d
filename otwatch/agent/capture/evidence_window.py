"""The ring's side of evidence: which segment files hold a time window, their frames, and what to
say when the ring no longer holds the window."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from otwatch.agent.capture.evidence_cut import SegmentRef
from otwatch.agent.capture.evidence_hosts import HostMatcher
from otwatch.agent.capture.pcapfile import Frame
from otwatch.agent.capture.ring import EVICTED_STATE, resolve_path
from otwatch.agent.capture.ring_segments import iter_segment
from otwatch.agent.store.db import Store
from otwatch.agent.store.models_pcap import PcapSegment
from otwatch.agent.store.state import get_state
from otwatch.timeutil import format_iso


def window_segments(
    session: Session, data_dir: Path, start_ns: int, end_ns: int
) -> list[SegmentRef]:
    rows = session.execute(
        select(
            PcapSegment.path,
            PcapSegment.bytes,
            PcapSegment.linktype,
            PcapSegment.nanosecond,
            PcapSegment.first_ns,
            PcapSegment.last_ns,
            PcapSegment.closed,
        )
        .where(
            PcapSegment.first_ns.is_not(None),
            PcapSegment.first_ns <= end_ns,
            PcapSegment.last_ns >= start_ns,
        )
        .order_by(PcapSegment.first_ns, PcapSegment.id)
    ).all()
    refs = []
    for p, size, lt, ns, first, last, closed in rows:
        assert first is not None and last is not None  # the query's bounds exclude NULLs
        refs.append(SegmentRef(resolve_path(p, data_dir), size, lt, ns, first, last, closed))
    return refs


def ring_frames(
    store: Store, start_ns: int, end_ns: int, matcher: HostMatcher | None = None
) -> tuple[list[SegmentRef], Iterator[Frame]]:
    """The ring's frames in ``[start_ns, end_ns]`` (optionally only ``matcher``'s), merged
    in time order across writers; also returns the segments read."""
    with store.session() as session:
        refs = window_segments(session, Path(store.data_dir), start_ns, end_ns)
    iters = [iter_segment(ref.path, ref.limit, start_ns, end_ns) for ref in refs]
    merged: Iterator[Frame] = (
        iters[0] if len(iters) == 1 else heapq.merge(*iters, key=lambda f: f[0])
    )
    if matcher is not None:
        merged = filter(matcher, merged)
    return refs, merged


def ring_oldest_ns(session: Session) -> int | None:
    return session.scalar(select(func.min(PcapSegment.first_ns)))


def unavailable_message(session: Session, start_ns: int, end_ns: int) -> str:
    oldest = ring_oldest_ns(session)
    evicted = get_state(session, EVICTED_STATE, {}) or {}
    span = f"{format_iso(start_ns)} to {format_iso(end_ns)}"
    if evicted.get("until_ns", 0) >= start_ns:
        return (
            f"PCAP not available: rotated out at {format_iso(evicted.get('at_ns'))} "
            f"(packets {span}; the ring now starts at {format_iso(oldest) or 'nothing'})"
        )
    if oldest is None:
        return f"PCAP not available: the ring is empty (packets {span} were never recorded)"
    return f"PCAP not available: the ring holds no packets from {span}"


def file_format(path: Path) -> tuple[int, bool] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24:
        return None
    magic = int.from_bytes(head[:4], "little")
    return int.from_bytes(head[20:24], "little") & 0xFFFF, magic == 0xA1B23C4D
