"""The evidence cut as it was before the one-pass cut: frame by frame, 32 alerts per pass,
each file trimmed after writing. Kept only as the oracle of ``test_evidence_cut.py``: the new
cut must write the same bytes."""

# ruff: noqa
from __future__ import annotations

import contextlib
import heapq
import os
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

from sqlalchemy import select

from otwatch.agent.capture.evidence import Evidence
from otwatch.agent.capture.evidence_window import unavailable_message
from otwatch.agent.capture.evidence_hosts import HostMatcher
from otwatch.agent.capture.evidence_window import ring_frames
from otwatch.agent.capture.pcapfile import Frame
from otwatch.agent.capture.pcapwrite import file_header
from otwatch.agent.capture.ring import store_path
from otwatch.agent.capture.ring_segments import iter_segment
from otwatch.agent.store.models_pcap import PcapEvidence

_NS = 1_000_000_000
_REC_HDR = 16
_pack_rec = struct.Struct("<IIII").pack


class _Appender:
    """Writes frames to a pcap file (new or appended), counting what it wrote."""

    def __init__(
        self, path: Path, linktype: int | None, nanosecond: bool, chunk: int = 1 << 20
    ) -> None:
        self.path = path
        self._limit = chunk
        self.linktype = linktype
        self.nanosecond = nanosecond
        self.packets = 0
        self.bytes = 0
        self._f = None
        self._chunk: list[bytes] = []
        self._chunk_bytes = 0

    def add(self, frame: Frame) -> None:
        ts, wlen, lt, data = frame
        if self._f is None:
            if self.linktype is None:
                self.linktype = lt
            exists = self.path.exists() and self.path.stat().st_size >= 24
            self._f = open(self.path, "ab")  # noqa: SIM115
            if not exists:
                self._f.truncate(0)
                self._f.write(file_header(self.linktype, self.nanosecond))
        if lt != self.linktype:
            return  # a pcap file has one link type; frames of another interface type are left
        sec, frac = divmod(ts, _NS)
        if not self.nanosecond:
            frac //= 1000
        self._chunk.append(_pack_rec(sec, frac, len(data), wlen))
        self._chunk.append(data)
        self._chunk_bytes += _REC_HDR + len(data)
        self.packets += 1
        self.bytes += _REC_HDR + len(data)
        if self._chunk_bytes >= self._limit:
            self._write()

    def _write(self) -> None:
        if self._f is not None and self._chunk:
            self._f.write(b"".join(self._chunk))
        self._chunk.clear()
        self._chunk_bytes = 0

    def close(self) -> None:
        self._write()
        if self._f is not None:
            self._f.close()


def _file_format(path: Path) -> tuple[int, bool] | None:
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError:
        return None
    if len(head) < 24:
        return None
    magic = int.from_bytes(head[:4], "little")
    return int.from_bytes(head[20:24], "little") & 0xFFFF, magic == 0xA1B23C4D


def _trim_oldest(path: Path, max_bytes: int) -> tuple[int, int]:
    """Keep the newest records of ``path`` that fit in ``max_bytes``; returns (packets, bytes)."""
    fmt = _file_format(path)
    if fmt is None:
        return 0, 0
    sizes = [(_REC_HDR + len(f[3])) for f in iter_segment(path)]
    keep_bytes, keep = 24, 0
    for size in reversed(sizes):
        if keep_bytes + size > max_bytes:
            break
        keep_bytes += size
        keep += 1
    skip = len(sizes) - keep
    tmp = path.with_suffix(".trim")
    out = _Appender(tmp, fmt[0], fmt[1])
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    for i, frame in enumerate(iter_segment(path)):
        if i >= skip:
            out.add(frame)
    out.close()
    if out.packets == 0:
        tmp.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        return 0, 0
    os.replace(tmp, path)
    return out.packets, out.bytes + 24


class _Job:
    """One alert's extraction within a batch."""

    __slots__ = ("alert_id", "end", "matcher", "out", "packets_before", "path", "row", "start")

    def __init__(self, row: PcapEvidence, directory: Path) -> None:
        self.row = row
        self.alert_id = row.alert_id
        self.start = (
            row.window_start_ns if row.covered_until_ns is None else row.covered_until_ns + 1
        )
        self.end = row.window_end_ns
        self.matcher = HostMatcher(row.hosts)
        self.path = directory / f"alert-{row.alert_id}.pcap"
        if row.path is None or row.status == "evicted":
            self.path.unlink(missing_ok=True)
        elif self.path.exists() and self.path.stat().st_size > row.bytes:
            # an extraction interrupted before its bookkeeping: forget what it appended
            os.truncate(self.path, row.bytes)
        self.packets_before = row.packets if row.path else 0
        self.out: _Appender | None = None

    def rollback(self) -> None:
        """Forget what this pass appended (the row still describes the file before it)."""
        if self.row.path is None or self.row.status == "evicted":
            self.path.unlink(missing_ok=True)
        elif self.path.exists() and self.path.stat().st_size > self.row.bytes:
            os.truncate(self.path, self.row.bytes)

    def open(self, default_linktype: int, nanosecond: bool) -> None:
        fmt = _file_format(self.path)
        if fmt is not None:
            default_linktype, nanosecond = fmt
        self.out = _Appender(self.path, default_linktype, nanosecond, chunk=64 * 1024)


def _route(
    frames: Iterable[Frame], jobs: list[_Job], interrupt: Callable[[], bool] | None = None
) -> None:
    """Give each frame to the jobs whose hosts and window it matches; ``interrupt()`` is
    asked every 8,192 frames and raises :class:`_Interrupted` when true."""
    by_ip4: dict[bytes, list[_Job]] = {}
    for job in jobs:
        for packed in job.matcher.packed4:
            by_ip4.setdefault(packed, []).append(job)
    v4_only = all(job.matcher.packed4 and not job.matcher.macs for job in jobs)
    v4_ids = {id(job) for job in jobs if job.matcher.packed4 and not job.matcher.macs}
    empty: list[_Job] = []
    for n, frame in enumerate(frames):
        if interrupt is not None and not n & 0x1FFF and interrupt():
            raise _Interrupted
        data = frame[3]
        if frame[2] == 1 and data[12:14] == b"\x08\x00" and len(data) >= 34:
            ts = frame[0]
            src = by_ip4.get(data[26:30], empty)
            dst = by_ip4.get(data[30:34], empty)
            for job in src:
                if job.start <= ts <= job.end:
                    job.out.add(frame)  # type: ignore[union-attr]
            for job in dst:
                if job.start <= ts <= job.end and job not in src:
                    job.out.add(frame)  # type: ignore[union-attr]
            if v4_only:
                continue
            rest = [job for job in jobs if id(job) not in v4_ids]
        else:
            rest = jobs
        ts = frame[0]
        for job in rest:
            if job.start <= ts <= job.end and job.matcher(frame):
                job.out.add(frame)  # type: ignore[union-attr]


class OldEvidence(Evidence):
    """:class:`Evidence` with the old extraction, one alert per pass. (In batches, as
    ``extract_due`` ran it, a new file's format came from the first segment of the whole
    batch's span, so an alert's file depended on which alerts shared its batch.)"""

    def extract_many(self, alert_ids, *, interrupt=None):
        ids = list(alert_ids)
        result = {}
        for alert_id in ids:
            result.update(self._extract_old([alert_id], interrupt=interrupt))
        return result

    def _extract_old(
        self, alert_ids: Iterable[int], *, interrupt: Callable[[], bool] | None = None
    ) -> dict[int, PcapEvidence]:
        """Extend the evidence of these alerts up to their window ends, in one pass over the
        ring: frames are routed to alerts by address, so many alerts cost little more than
        one. Returns the updated rows (detached). ``interrupt`` may abort the pass
        (:class:`_Interrupted`); the rows are then left as they were."""
        with self.store.session() as session:
            rows = list(
                session.scalars(
                    select(PcapEvidence).where(PcapEvidence.alert_id.in_(list(alert_ids)))
                )
            )
            for row in rows:
                session.expunge(row)
        if not rows:
            return {}
        self.directory.mkdir(parents=True, exist_ok=True)
        jobs = [_Job(row, self.directory) for row in rows]
        live = [job for job in jobs if job.matcher and job.start <= job.end]
        refs: list[_SegmentRef] = []
        if live:
            lo = min(job.start for job in live)
            hi = max(job.end for job in live)
            refs, frames = ring_frames(self.store, lo, hi)
            default_lt = refs[0].linktype if refs else 1
            nanosecond = any(r.nanosecond for r in refs)
            for job in live:
                job.open(default_lt, nanosecond)
            try:
                _route(frames, live, interrupt)
            except _Interrupted:
                for job in live:
                    job.out.close()
                    job.rollback()
                raise
            finally:
                for job in live:
                    job.out.close()
        return {job.alert_id: self._finish(job, refs) for job in jobs}

    def _finish(self, job: _Job, refs: list[_SegmentRef]) -> PcapEvidence:
        path = job.path
        written = job.out.packets if job.out is not None else 0
        total_packets = job.packets_before + written
        size = path.stat().st_size if path.exists() else 0
        if size > self.config.alert_max_bytes:
            total_packets, size = _trim_oldest(path, self.config.alert_max_bytes)
        covered = refs
        now = self.wall_ns()
        with self.store.session() as session:
            current = session.get(PcapEvidence, job.alert_id)
            if current is None:  # the alert was deleted meanwhile
                path.unlink(missing_ok=True)
                return job.row
            current.covered_until_ns = job.end
            current.packets = total_packets
            current.bytes = size if total_packets else 0
            current.updated_ns = now
            current.path = store_path(path, self.data_dir) if total_packets else None
            if current.window_end_ns > job.end:
                current.status = "pending"  # widened again while we were extracting
            elif total_packets:
                current.status, current.message = "ready", None
            elif not covered:
                current.status = "unavailable"
                current.message = unavailable_message(session, job.start, job.end)
            else:
                current.status = "empty"
                current.message = "no packets of the alert's hosts in the window"
            if not total_packets:
                path.unlink(missing_ok=True)
            self.extracted += 1
            session.flush()
            session.expunge(current)
            return current
