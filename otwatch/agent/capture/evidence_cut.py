"""Cut the evidence of many alerts in one pass over the ring, then copy byte ranges.

The pass walks the record headers of the segments the alerts' windows need, once, and
notes for each IPv4 address of the batch the runs of records that carry it (a run: records
next to each other in the merged stream). At the end of each stretch of records (an
*epoch*), every alert takes the union of its addresses' runs, clipped to its window, as byte
ranges of segment files, and keeps only the newest ones its file budget can hold. Only then
are files written: the records are copied as they are in the ring, long runs by the kernel
(``copy_file_range``: a run of a thousand packets costs one system call), scattered ones
gathered through a read window; a packet shared by a hundred alerts is read once.

What reaches a file is exactly what frame-by-frame routing wrote before (records in the
order of the time-merged ring, the same host test, the file then trimmed to its newest
records): records are copied raw only when the segment's timestamp format is the file's
and its fractions are in range; otherwise their headers are re-packed as before. Frames
that are not untagged Ethernet/IPv4, and alerts named by MAC or IPv6 address, go through
:class:`HostMatcher` frame by frame, as before.
"""

from __future__ import annotations

import bisect
import heapq
import mmap
import os
import re
import struct
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otwatch.agent.capture.pcapfile import MAX_CAPLEN

__all__ = [
    "CutJob",
    "Interrupted",
    "SegmentRef",
    "cut",
    "merge_groups",
]

_NS = 1_000_000_000
_EPOCH = 65_536
"""Records (of any alert's hosts) per epoch: bounds the pass's working memory."""
_INTERRUPT_EVERY = 0x1FFF
_RELEASE = 4 << 20
_rec = struct.Struct("<IIII")
_rec_unpack = _rec.unpack_from
_rec_pack = _rec.pack
# header, then (untagged Ethernet/IPv4) the EtherType and both addresses, in one call
_rec_ip4 = struct.Struct("<IIII12x2s12x4s4s").unpack_from
_IP4_MIN = 16 + 34
_ETH_IP4 = b"\x08\x00"
_FILE_HDR = struct.Struct("<IHHiIII")
_MAGIC_US, _MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D


class Interrupted(Exception):
    """The pass was asked to stop (``interrupt()``); nothing was written."""


@dataclass(slots=True)
class SegmentRef:
    path: Path
    limit: int
    linktype: int
    nanosecond: bool
    first_ns: int = 0
    last_ns: int = 0
    closed: bool = False
    """Written whole: its writer will not append to it (so an index of it stays true)."""


def merge_groups(refs: Sequence[SegmentRef]) -> list[list[int]]:
    """Indexes of ``refs`` (ordered by first packet) in groups whose time ranges overlap.

    Every packet of a group is newer than every packet of the groups before it, so the
    time-merged ring is the groups one after another, each merged on its own."""
    groups: list[list[int]] = []
    newest = None
    for i, ref in enumerate(refs):
        if groups and newest is not None and ref.first_ns <= newest:
            groups[-1].append(i)
            newest = max(newest, ref.last_ns)
        else:
            groups.append([i])
            newest = ref.last_ns
    return groups


class CutJob:
    """One alert's share of a pass: its hosts, window and file, and the byte ranges found.

    The ``r_*`` arrays hold (segment, start, end, records) runs from ``head`` on: the newest
    records that can still end up in the file; older runs leave as soon as newer ones alone
    exceed the file budget."""

    __slots__ = (
        "addresses",
        "addresses6",
        "end",
        "extra",
        "found_bytes",
        "generic",
        "head",
        "linktype",
        "matcher",
        "nanosecond",
        "r_count",
        "r_end",
        "r_seg",
        "r_start",
        "room",
        "start",
        "tail_bytes",
    )

    def __init__(
        self, matcher: Any, start: int, end: int, linktype: int, nanosecond: bool, room: int
    ) -> None:
        self.matcher = matcher
        self.start, self.end = start, end
        self.linktype, self.nanosecond = linktype, nanosecond
        self.room = room
        """Record bytes the file may hold (its budget less the file header)."""
        self.generic = bool(matcher.macs) or not (matcher.packed4 or matcher.packed6)
        """Named by MAC (or by nothing usable): every frame is tested by the matcher. A job
        named by IPv6 addresses alone cannot match an IPv4 frame (the matcher's decode
        says so) and is tested on the other frames only."""
        self.addresses = () if self.generic else tuple(matcher.packed4)
        self.addresses6 = () if self.generic else tuple(matcher.packed6)
        self.extra: list[int] = []
        """Epoch records that :attr:`matcher` accepted frame by frame."""
        self.r_seg = array("I")
        self.r_start = array("Q")
        self.r_end = array("Q")
        self.r_count = array("I")
        self.head = 0
        self.found_bytes = 0
        """Bytes of every record found, trimmed or not (decides whether the file is trimmed)."""
        self.tail_bytes = 0
        """Bytes of the runs from ``head`` on."""

    @property
    def found(self) -> bool:
        return self.found_bytes > 0

    def add(self, seg: int, start: int, end: int, count: int) -> None:
        size = end - start
        self.found_bytes += size
        self.tail_bytes += size
        n = len(self.r_end)
        if n > self.head and self.r_seg[-1] == seg and self.r_end[-1] == start:
            self.r_end[-1] = end
            self.r_count[-1] += count
        else:
            self.r_seg.append(seg)
            self.r_start.append(start)
            self.r_end.append(end)
            self.r_count.append(count)
        self._forget_old()

    def extend(self, runs: list[tuple[int, int, int, int]]) -> None:
        """:meth:`add` for runs in stream order (runs that touch may stay apart)."""
        if not runs:
            return
        first = runs[0]
        n = len(self.r_end)
        if n > self.head and self.r_seg[-1] == first[0] and self.r_end[-1] == first[1]:
            self.add(*first)
            runs = runs[1:]
        if not runs:
            return
        segs, starts, ends, counts = zip(*runs, strict=True)
        size = sum(ends) - sum(starts)
        self.found_bytes += size
        self.tail_bytes += size
        self.r_seg.extend(segs)
        self.r_start.extend(starts)
        self.r_end.extend(ends)
        self.r_count.extend(counts)
        self._forget_old()

    def extend_segment(
        self, seg: int, starts: list[int], ends: list[int], counts: list[int]
    ) -> None:
        """:meth:`extend` for runs of one segment, given as columns."""
        if not starts:
            return
        n = len(self.r_end)
        if n > self.head and self.r_seg[-1] == seg and self.r_end[-1] == starts[0]:
            self.add(seg, starts[0], ends[0], counts[0])
            starts, ends, counts = starts[1:], ends[1:], counts[1:]
        size = sum(ends) - sum(starts)
        self.found_bytes += size
        self.tail_bytes += size
        self.r_seg.extend([seg] * len(starts))
        self.r_start.extend(starts)
        self.r_end.extend(ends)
        self.r_count.extend(counts)
        self._forget_old()

    def _forget_old(self) -> None:
        head, last = self.head, len(self.r_end) - 1
        r_start, r_end = self.r_start, self.r_end
        while head < last and self.tail_bytes - (r_end[head] - r_start[head]) > self.room:
            self.tail_bytes -= r_end[head] - r_start[head]
            head += 1
        if head > 4096 and head * 2 > len(r_end):
            for a in (self.r_seg, self.r_start, self.r_end, self.r_count):
                del a[:head]
            head = 0
        self.head = head


class _Epoch:
    """Records of the current stretch that some alert may want, by position in the stream."""

    __slots__ = ("breaks", "ends", "mono", "offs", "segs", "tss")

    def __init__(self) -> None:
        self.offs = array("q")
        self.ends = array("q")
        self.segs = array("q")
        self.tss = array("q")
        self.breaks: list[int] = [0]
        """Positions where the bytes stop being contiguous with the previous record."""
        self.mono = True
        """Timestamps never go back (windows can then be clipped by bisection)."""

    def add(self, seg: int, off: int, end: int, ts: int) -> int:
        k = len(self.offs)
        if k and (self.segs[-1] != seg or self.ends[-1] != off):
            self.breaks.append(k)
        if k and ts < self.tss[-1]:
            self.mono = False
        self.offs.append(off)
        self.ends.append(end)
        self.segs.append(seg)
        self.tss.append(ts)
        return k

    def byte_runs(self, a: int, b: int) -> Iterator[tuple[int, int, int, int]]:
        """(segment, start, end, records) for stream positions ``a`` to ``b`` (exclusive)."""
        breaks = self.breaks
        i = bisect.bisect_right(breaks, a)
        while a < b:
            stop = breaks[i] if i < len(breaks) and breaks[i] < b else b
            yield self.segs[a], self.offs[a], self.ends[stop - 1], stop - a
            a = stop
            i += 1


def _union(runs: list[int]) -> list[tuple[int, int]]:
    """Merge flat ``[start, end, start, end, …]`` runs into sorted disjoint (start, end)."""
    pairs = sorted(zip(runs[::2], runs[1::2], strict=True))
    out: list[tuple[int, int]] = []
    for s, e in pairs:
        if s >= e:
            continue
        if out and s <= out[-1][1]:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def _clip(epoch: _Epoch, runs: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """Keep the positions of ``runs`` whose timestamp is inside [lo, hi]."""
    tss = epoch.tss
    if epoch.mono:
        if lo <= tss[runs[0][0]] and tss[runs[-1][1] - 1] <= hi:
            return runs
        a, b = bisect.bisect_left(tss, lo), bisect.bisect_right(tss, hi)
        return [(max(s, a), min(e, b)) for s, e in runs if s < b and e > a]
    out: list[tuple[int, int]] = []
    for s, e in runs:
        for k in range(s, e):
            if lo <= tss[k] <= hi:
                if out and out[-1][1] == k:
                    out[-1] = (out[-1][0], k + 1)
                else:
                    out.append((k, k + 1))
    return out


class _Segments:
    """The pass's view of the ring's segment files: mapped while a group is read."""

    def __init__(self, refs: Sequence[SegmentRef]) -> None:
        self.refs = refs
        self.maps: dict[int, mmap.mmap] = {}
        self.sizes: dict[int, int] = {}

    def open(self, i: int) -> tuple[mmap.mmap | None, int, int]:
        """(map, end, timestamp multiplier) of segment ``i``; no map when unreadable."""
        ref = self.refs[i]
        try:
            with open(ref.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < 24:
                    return None, 0, 0
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (FileNotFoundError, ValueError):
            return None, 0, 0
        magic = _FILE_HDR.unpack_from(mm, 0)[0]
        if magic not in (_MAGIC_US, _MAGIC_NS):
            mm.close()
            return None, 0, 0
        self.maps[i] = mm
        return mm, min(size, ref.limit), 1 if magic == _MAGIC_NS else 1000

    def close(self) -> None:
        for mm in self.maps.values():
            mm.close()
        self.maps.clear()


Record = tuple[int, int, int, int, bytes | None, bytes, bytes]


def _records(segs: _Segments, i: int, lo: int, hi: int, odd: set[int]) -> Iterator[Record]:
    """(ts, segment, start, end, EtherType, source, destination) of segment ``i``'s records
    inside [lo, hi]; EtherType is None when the record is too short for an IPv4 header
    (the addresses are then meaningless). A segment with a timestamp fraction out of range
    goes into ``odd`` (its headers get re-packed)."""
    mm, end, mul = segs.open(i)
    if mm is None:
        return
    frac_max = _NS // mul
    pos = 24
    released = 0
    unpack, unpack_ip4 = _rec_unpack, _rec_ip4
    while pos + 16 <= end:
        if pos - released >= _RELEASE:  # pages read stay off this process's resident set
            mm.madvise(mmap.MADV_DONTNEED, released, _RELEASE)
            released += _RELEASE
        if pos + _IP4_MIN <= end:
            sec, frac, caplen, _wlen, ether, src, dst = unpack_ip4(mm, pos)
            if caplen < _IP4_MIN - 16:
                ether = None
        else:
            sec, frac, caplen, _wlen = unpack(mm, pos)
            ether = src = dst = None
        nxt = pos + 16 + caplen
        if caplen > MAX_CAPLEN or nxt > end:
            return
        if frac >= frac_max:
            odd.add(i)
        ts = sec * _NS + frac * mul
        if lo <= ts <= hi:
            yield ts, i, pos, nxt, ether, src, dst
        pos = nxt


def cut(
    refs: Sequence[SegmentRef],
    jobs: Sequence[CutJob],
    interrupt: Callable[[], bool] | None = None,
    groups: Sequence[list[int]] | None = None,
    records: Callable[..., Iterator[Record]] | None = None,
) -> set[int]:
    """Find each job's records in one pass over ``refs`` (ordered by first packet), walking
    every record header (of ``groups`` of :func:`merge_groups` only, when given; ``records``
    may yield only the records some job may want instead, with :func:`_records`'s
    arguments); returns the segments whose headers must be re-packed when copied. Raises
    :class:`Interrupted` when ``interrupt()`` turns true (asked every 8,192 records)."""
    read = _records if records is None else records
    lo = min(job.start for job in jobs)
    hi = max(job.end for job in jobs)
    slots: dict[bytes, list[int]] = {}
    for job in jobs:
        for packed in job.addresses:
            slots.setdefault(packed, [-1, -1])
    generic = [job for job in jobs if job.generic]
    needles = {n for job in jobs for n in job.matcher.needles}
    needle = re.compile(b"|".join(re.escape(n) for n in sorted(needles))) if needles else None
    generic_needle = (
        re.compile(b"|".join(re.escape(n) for job in generic for n in job.matcher.needles))
        if generic
        else None
    )
    segs = _Segments(refs)
    odd: set[int] = set()
    epoch = _Epoch()
    offs, ends, segs_, tss = epoch.offs, epoch.ends, epoch.segs, epoch.tss
    n = 0
    try:
        for group in merge_groups(refs) if groups is None else groups:
            streams = [read(segs, i, lo, hi, odd) for i in group]
            stream = streams[0] if len(streams) == 1 else heapq.merge(*streams)
            for ts, i, pos, nxt, ether, src, dst in stream:
                if interrupt is not None and not n & _INTERRUPT_EVERY and interrupt():
                    raise Interrupted
                n += 1
                lt = refs[i].linktype
                fast = False
                if lt == 1 and ether == _ETH_IP4:
                    fast = True
                    a = slots.get(src)
                    b = slots.get(dst)
                    if a is not None or b is not None:
                        # epoch.add, inline: this runs for most records of a storm
                        k = len(offs)
                        if k and (segs_[-1] != i or ends[-1] != pos):
                            epoch.breaks.append(k)
                        if k and ts < tss[-1]:
                            epoch.mono = False
                        offs.append(pos)
                        ends.append(nxt)
                        segs_.append(i)
                        tss.append(ts)
                        if a is not None:
                            if a[-1] == k:
                                a[-1] = k + 1
                            else:
                                a += (k, k + 1)
                        if b is not None and b is not a:
                            if b[-1] == k:
                                b[-1] = k + 1
                            else:
                                b += (k, k + 1)
                candidates = generic if fast else jobs
                pattern = generic_needle if fast else needle
                if candidates and pattern is not None:
                    mm = segs.maps[i]
                    data = mm[pos + 16 : nxt]
                    if pattern.search(data) is not None:
                        frame = (ts, _rec_unpack(mm, pos)[3], lt, data)
                        k = -1
                        for job in candidates:
                            if job.start <= ts <= job.end and job.matcher(frame):
                                if k < 0:
                                    k = _epoch_position(epoch, i, pos, nxt, ts)
                                job.extra.append(k)
                if len(offs) >= _EPOCH:
                    _close_epoch(epoch, jobs, slots, refs)
                    epoch = _Epoch()
                    offs, ends, segs_, tss = epoch.offs, epoch.ends, epoch.segs, epoch.tss
            _close_epoch(epoch, jobs, slots, refs)
            epoch = _Epoch()
            offs, ends, segs_, tss = epoch.offs, epoch.ends, epoch.segs, epoch.tss
            segs.close()
    finally:
        segs.close()
    return odd


def _epoch_position(epoch: _Epoch, seg: int, pos: int, end: int, ts: int) -> int:
    """The record's position in the epoch (it may already be there from the address test)."""
    k = len(epoch.offs) - 1
    if k >= 0 and epoch.segs[k] == seg and epoch.offs[k] == pos:
        return k
    return epoch.add(seg, pos, end, ts)


def _close_epoch(
    epoch: _Epoch, jobs: Sequence[CutJob], slots: dict[bytes, list[int]], refs
) -> None:
    if not epoch.offs:
        return
    segs, offs, ends = epoch.segs, epoch.offs, epoch.ends
    linktypes = {refs[seg].linktype for seg in set(segs)}
    same_linktype = {job.linktype: linktypes == {job.linktype} for job in jobs}
    for job in jobs:
        flat: list[int] = []
        for packed in job.addresses:
            flat += slots[packed]
        if job.extra:
            for k in job.extra:
                flat += (k, k + 1)
            job.extra.clear()
        runs = _union(flat)
        if not runs:
            continue
        runs = _clip(epoch, runs, job.start, job.end)
        found = []
        for s, e in runs:
            if e - s == 1:
                found.append((segs[s], offs[s], ends[s], 1))
            else:
                found += epoch.byte_runs(s, e)
        if not same_linktype[job.linktype]:  # a pcap file has one link type
            found = [run for run in found if refs[run[0]].linktype == job.linktype]
        job.extend(found)
    for slot in slots.values():
        slot[:] = [-1, -1]
