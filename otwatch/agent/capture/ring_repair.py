"""Repairing the ring on start, after a crash: a segment cut short loses its trailing partial
record and is indexed, rows without files are removed, stray files are indexed. A segment
closed here also gets its record index (:mod:`~otwatch.agent.capture.ring_index`); an index
without its segment is deleted."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, select, update

from otwatch.agent.capture.ring import RingError, _unlink, resolve_path, store_path
from otwatch.agent.capture.ring_index import index_segment, remove_index
from otwatch.agent.capture.ring_segments import SegmentScan, scan_segment
from otwatch.agent.store.db import Store
from otwatch.agent.store.models_pcap import PcapSegment


@dataclass(slots=True)
class RepairReport:
    repaired: int = 0
    """Segments left open by a process that is gone, now closed and indexed."""
    truncated_bytes: int = 0
    """Bytes of partial trailing records cut off."""
    indexed: int = 0
    """Segment files found without an index row, now indexed."""
    removed: int = 0
    """Index rows whose file was missing, or unusable files, removed."""


def _pid_alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def repair_ring(store: Store, directory: Path) -> RepairReport:
    """Close and index what a crash left behind; safe beside running writers (their open
    segments, owned by live processes, are left alone)."""
    report = RepairReport()
    data_dir = Path(store.data_dir)
    directory = Path(directory)
    with store.session() as session:
        rows = session.execute(
            select(PcapSegment.id, PcapSegment.path, PcapSegment.closed, PcapSegment.owner_pid)
        ).all()
    known = set()
    for row_id, recorded, closed, pid in rows:
        path = resolve_path(recorded, data_dir)
        known.add(path.resolve())
        if not path.exists():
            remove_index(path)
            with store.session() as session:
                session.execute(delete(PcapSegment).where(PcapSegment.id == row_id))
            report.removed += 1
            continue
        if closed or _pid_alive(pid):
            continue
        scan = _repair_file(path, report)
        with store.session() as session:
            if scan is None or scan.packets == 0:
                _unlink(path)
                session.execute(delete(PcapSegment).where(PcapSegment.id == row_id))
                report.removed += 1
                continue
            session.execute(
                update(PcapSegment)
                .where(PcapSegment.id == row_id)
                .values(
                    first_ns=scan.first_ns,
                    last_ns=scan.last_ns,
                    packets=scan.packets,
                    bytes=scan.valid_end,
                    closed=True,
                )
            )
        index_segment(path, scan.linktype, scan.nanosecond)
        report.repaired += 1
    if directory.is_dir():
        for path in sorted(directory.glob("*.pcap")):
            if path.resolve() in known:
                continue
            scan = _repair_file(path, report)
            if scan is None or scan.packets == 0:
                _unlink(path)
                report.removed += 1
                continue
            with store.session() as session:
                session.add(
                    PcapSegment(
                        path=store_path(path, data_dir),
                        writer=path.name.split("-", 1)[0][:32],
                        owner_pid=0,
                        linktype=scan.linktype,
                        nanosecond=scan.nanosecond,
                        first_ns=scan.first_ns,
                        last_ns=scan.last_ns,
                        packets=scan.packets,
                        bytes=scan.valid_end,
                        closed=True,
                        created_ns=time.time_ns(),
                    )
                )
            index_segment(path, scan.linktype, scan.nanosecond)
            report.indexed += 1
        for stray in [*directory.glob("*.pcap.idx"), *directory.glob("*.idx.tmp")]:
            if stray.suffix == ".tmp" or not stray.with_suffix("").exists():
                stray.unlink(missing_ok=True)
    return report


def _repair_file(path: Path, report: RepairReport) -> SegmentScan | None:
    try:
        scan = scan_segment(path)
    except OSError:
        return None
    if scan is not None and scan.valid_end < scan.size:
        try:
            os.truncate(path, scan.valid_end)
        except OSError as exc:
            raise RingError(f"cannot repair PCAP segment {path}: {exc.strerror}") from None
        report.truncated_bytes += scan.size - scan.valid_end
    return scan
