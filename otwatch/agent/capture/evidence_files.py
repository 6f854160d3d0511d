"""Writing evidence files from cut runs: copy record runs between segment files and an alert's
file (repacking timestamps when the resolutions differ), plan what a file keeps under its
budget, and write it."""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from otwatch.agent.capture.evidence_cut import (
    _NS,
    _RELEASE,
    CutJob,
    SegmentRef,
    _rec_pack,
    _rec_unpack,
)
from otwatch.agent.capture.evidence_indexed import segment_index
from otwatch.agent.capture.pcapfile import MAX_CAPLEN
from otwatch.agent.capture.pcapwrite import file_header


def copy_range(src: int, dst: int, offset: int, count: int) -> None:
    """Copy ``count`` bytes from ``offset`` of ``src`` to ``dst`` (by the kernel when it can)."""
    while count > 0:
        try:
            done = os.copy_file_range(src, dst, count, offset)
        except OSError:
            done = 0
        if done <= 0:  # another filesystem or no support: plain read and write
            data = os.pread(src, count, offset)
            if not data:
                raise OSError(f"short read at {offset}")
            os.write(dst, data)
            done = len(data)
        offset += done
        count -= done


class SegmentFiles:
    """The ring segments a pass copies from: descriptors for ``copy_file_range``, a map for
    small scattered records, record offsets for cutting a run at a record. Mapped pages are
    given back as reading moves on (every 4 MiB), so the pass's resident memory does not
    grow with the ring."""

    def __init__(
        self, refs: Sequence[SegmentRef], odd: set[int], *, use_index: bool = True
    ) -> None:
        self.refs = refs
        self.odd = odd
        self.use_index = use_index
        self._fds: dict[int, int] = {}
        self._offsets: dict[int, Sequence[int]] = {}
        self._map: tuple[int, mmap.mmap | None] = (-1, None)
        self._released = 0

    def fd(self, seg: int) -> int:
        fd = self._fds.get(seg)
        if fd is None:
            fd = self._fds[seg] = os.open(self.refs[seg].path, os.O_RDONLY | os.O_CLOEXEC)
        return fd

    def mapped(self, seg: int, start: int) -> mmap.mmap:
        """The segment's map, for reading on from ``start`` (pages read before are given
        back every 4 MiB, and when reading starts over)."""
        mseg, mm = self._map
        if mseg != seg or mm is None:
            if mm is not None:
                mm.close()
            mm = mmap.mmap(self.fd(seg), 0, access=mmap.ACCESS_READ)
            self._map, self._released = (seg, mm), 0
        elif start < self._released or start - self._released >= _RELEASE:
            mm.madvise(mmap.MADV_DONTNEED)
            self._released = start & ~(mmap.PAGESIZE - 1)
        return mm

    def read(self, seg: int, start: int, end: int) -> bytes:
        """Bytes ``start:end`` of a segment."""
        return self.mapped(seg, start)[start:end]

    def write_runs(self, fd: int, runs: Iterable[tuple[int, int, int, int]], ns: bool) -> None:
        """Append the records of ``runs`` to ``fd`` (a file in ``ns`` resolution)."""
        out = _Output(fd)
        refs, odd, pieces = self.refs, self.odd, out.pieces
        mseg, mm, released, pending = -1, None, 0, 0
        for seg, start, end, _count in runs:
            if refs[seg].nanosecond != ns or seg in odd:
                pieces.append(_repacked(self.read(seg, start, end), refs[seg].nanosecond, ns))
                pending += end - start
                mseg = -1
            elif end - start >= _SMALL_RUN:
                out.flush()
                copy_range(self.fd(seg), fd, start, end - start)
            else:  # the common case of scattered records, kept short
                if seg != mseg or start < released or start - released >= _RELEASE:
                    mm = self.mapped(seg, start)
                    mseg, released = seg, self._released
                assert mm is not None
                pieces.append(mm[start:end])
                pending += end - start
            if pending >= _FLUSH:
                out.flush()
                pending = 0
        out.flush()

    def offsets(self, seg: int) -> Sequence[int]:
        """Offsets of the segment's records, and of the end of the last one (from its index
        when it has a usable one)."""
        found = self._offsets.get(seg)
        index = segment_index(self.refs[seg]) if found is None and self.use_index else None
        if index is not None:
            found = self._offsets[seg] = index.offs
        elif found is None:
            with mmap.mmap(self.fd(seg), 0, access=mmap.ACCESS_READ) as mm:
                offsets = _record_offsets(mm, 24, self.refs[seg].limit)
                found = self._offsets[seg] = array("Q", offsets)
        return found

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        self._offsets.clear()
        if self._map[1] is not None:
            self._map[1].close()
        self._map = (-1, None)


_SMALL_RUN = 64 * 1024
"""Runs below this are gathered in memory and written together; larger ones are copied by
the kernel."""


_FLUSH = 1 << 20


class _Output:
    """An output file: small pieces gathered into one write per ~1 MiB."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pieces: list[bytes] = []

    def flush(self) -> None:
        if self.pieces:
            data = b"".join(self.pieces)
            self.pieces.clear()
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]


def _repacked(data: bytes, src_ns: bool, dst_ns: bool) -> bytes:
    """Records with their headers re-packed (timestamp format or fraction range differs)."""
    mul = 1 if src_ns else 1000
    out = []
    pos = 0
    while pos + 16 <= len(data):
        sec, frac, caplen, wlen = _rec_unpack(data, pos)
        sec, frac = divmod(sec * _NS + frac * mul, _NS)
        if not dst_ns:
            frac //= 1000
        out.append(_rec_pack(sec, frac, caplen, wlen))
        out.append(data[pos + 16 : pos + 16 + caplen])
        pos += 16 + caplen
    return b"".join(out)


def _record_offsets(mm: mmap.mmap, pos: int, end: int) -> Iterator[int]:
    end = min(end, len(mm))
    released = 0
    yield pos
    while pos + 16 <= end:
        if pos - released >= _RELEASE:
            mm.madvise(mmap.MADV_DONTNEED, released, _RELEASE)
            released += _RELEASE
        caplen = _rec_unpack(mm, pos)[2]
        if caplen > MAX_CAPLEN or pos + 16 + caplen > end:
            break
        pos += 16 + caplen
        yield pos


def _record_sizes(data: bytes | mmap.mmap, pos: int = 0, end: int | None = None) -> list[int]:
    end = len(data) if end is None else end
    sizes = []
    while pos + 16 <= end:
        caplen = _rec_unpack(data, pos)[2]
        if caplen > MAX_CAPLEN or pos + 16 + caplen > end:
            break
        sizes.append(16 + caplen)
        pos += 16 + caplen
    return sizes


def file_records(path: Path) -> list[int]:
    """Record sizes of a pcap file (complete records only)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    return _record_sizes(data, 24) if len(data) >= 24 else []


@dataclass(slots=True)
class FilePlan:
    """What a job's file becomes: the job's runs from ``first`` on (the first one starting
    at ``first_start`` when it is cut) appended to the file as it is, or (``rewrite``) a new
    file of the newest ``old_bytes`` of its records, from ``old_from``, and those runs."""

    path: Path
    job: CutJob
    packets: int
    """Records in the file afterwards (0: no file)."""
    size: int
    first: int
    first_start: int | None = None
    first_count: int = 0
    rewrite: bool = False
    old_from: int = 0
    old_bytes: int = 0

    def runs(self) -> Iterator[tuple[int, int, int, int]]:
        job = self.job
        for i in range(self.first, len(job.r_end)):
            if i == self.first and self.first_start is not None:
                yield job.r_seg[i], self.first_start, job.r_end[i], self.first_count
            else:
                yield job.r_seg[i], job.r_start[i], job.r_end[i], job.r_count[i]


def plan_file(
    path: Path, job: CutJob, files: SegmentFiles, packets_before: int, max_bytes: int
) -> FilePlan:
    """Plan appending ``job``'s records to its file (``packets_before`` records already
    there). A file that would exceed ``max_bytes`` keeps only its newest records that fit."""
    size = path.stat().st_size if path.exists() else 0
    exists = size >= 24
    after = (size if exists else 24) + job.found_bytes if job.found else size
    if after <= max_bytes:
        found = sum(job.r_count[job.head :])
        return FilePlan(path, job, packets_before + found, after, job.head)
    # the newest records that fit: whole runs from the end, then part of one, then the file's
    room = max_bytes - 24
    used = packets = 0
    plan = FilePlan(path, job, 0, 0, len(job.r_end), rewrite=True)
    for i in range(len(job.r_end) - 1, job.head - 1, -1):
        seg, start, end = job.r_seg[i], job.r_start[i], job.r_end[i]
        if used + end - start <= room:
            used += end - start
            packets += job.r_count[i]
            plan.first = i
            continue
        offsets = files.offsets(seg)
        last = bisect.bisect_left(offsets, end)
        cut_at = bisect.bisect_left(offsets, end - (room - used), 0, last)
        if cut_at < last:
            plan.first, plan.first_start, plan.first_count = i, offsets[cut_at], last - cut_at
            used += end - offsets[cut_at]
            packets += last - cut_at
        break
    else:
        if exists:
            sizes = file_records(path)
            plan.old_from = 24 + sum(sizes)
            for rec in reversed(sizes):
                if used + rec > room:
                    break
                used += rec
                plan.old_from -= rec
                plan.old_bytes += rec
                packets += 1
    plan.packets = packets
    plan.size = 24 + used if packets else 0
    return plan


def write_file(plan: FilePlan, files: SegmentFiles, trim_path: Path) -> None:
    """Carry out ``plan``: append to the file, or build the trimmed file at ``trim_path``
    and rename it over the old one (no file when it keeps no record)."""
    job, path = plan.job, plan.path
    header = file_header(job.linktype, job.nanosecond)
    if not plan.rewrite:
        if plan.first >= len(job.r_end):
            return
        exists = path.exists() and path.stat().st_size >= 24
        # not O_APPEND: copy_file_range refuses such a target
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if exists:
                os.lseek(fd, 0, os.SEEK_END)
            else:
                os.ftruncate(fd, 0)
                os.write(fd, header)
            files.write_runs(fd, plan.runs(), job.nanosecond)
        finally:
            os.close(fd)
        return
    if plan.packets == 0:
        path.unlink(missing_ok=True)
        return
    with contextlib.suppress(FileNotFoundError):
        trim_path.unlink()
    fd = os.open(trim_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, header)
        if plan.old_bytes:
            src = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                copy_range(src, fd, plan.old_from, plan.old_bytes)
            finally:
                os.close(src)
        files.write_runs(fd, plan.runs(), job.nanosecond)
    finally:
        os.close(fd)
    os.replace(trim_path, path)
