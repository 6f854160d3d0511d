"""The evidence pass over the ring, reading each segment through its index when it can.

A segment that is alone in its time range (one writer, the common case), has an index that
still describes it (:func:`~otwatch.agent.capture.ring_index.load_index`) and times that
never go back is not walked: each alert's window is found by bisection of the record times,
the records of its addresses within the window are taken from the index as runs (an address
that every record of the window carries is the whole window at once), and their union
becomes byte ranges. Only the records that are not untagged Ethernet/IPv4 are
still read and tested frame by frame, as the walk tests them.

Segments whose times overlap (several writers) are merged record by record as before
(:func:`~otwatch.agent.capture.evidence_cut.cut`), but when each has such an index only the
records of the pass's addresses (and the frames that are not untagged Ethernet/IPv4) are
read and merged: the merge of sorted streams is a sort, so leaving out records no alert
wants does not change the order of the others. A closed segment without a usable index
(older otwatch, index switched off, lost or damaged) is indexed by walking it once, then read
through its index; a group with a segment that still has none (one still being written, a
ring the pass cannot write to) is walked whole, and so are all segments for alerts named by
MAC address.
Every way gives each alert the same records in the same order, so the files are the same
bytes (``tests/unit/agent/capture/test_evidence_cut.py``).
"""

from __future__ import annotations

import bisect
import mmap
import re
import struct
from collections.abc import Callable, Iterator, Sequence

from otwatch.agent.capture.evidence_cut import (
    _IP4_MIN,
    _RELEASE,
    CutJob,
    Interrupted,
    Record,
    SegmentRef,
    _rec_ip4,
    _Segments,
    _union,
    cut,
    merge_groups,
)
from otwatch.agent.capture.ring_index import SegmentIndex, index_segment, load_index

__all__ = ["cut_pass", "segment_index"]

_wlen = struct.Struct("<12xI").unpack_from


def segment_index(ref: SegmentRef, *, build: bool = False) -> SegmentIndex | None:
    """The segment's index when the pass may use it instead of walking the segment.

    ``build``: a closed segment without a usable index (written by an older otwatch or with
    the index switched off, its index lost or damaged) is indexed now, by walking it once,
    so that this pass and the next ones read it through the index."""
    index = load_index(ref.path, ref.limit, ref.linktype)
    if (
        index is None
        and build
        and ref.closed
        and index_segment(ref.path, ref.linktype, ref.nanosecond)
    ):
        index = load_index(ref.path, ref.limit, ref.linktype)
    return index if index is not None and index.mono else None


def cut_pass(
    refs: Sequence[SegmentRef],
    jobs: Sequence[CutJob],
    interrupt: Callable[[], bool] | None = None,
    *,
    use_index: bool = True,
) -> set[int]:
    """:func:`~otwatch.agent.capture.evidence_cut.cut`, through the segments' indexes where
    they can serve (``use_index=False``: never)."""
    by_address = [job for job in jobs if not job.generic]
    generic = [job for job in jobs if job.generic]
    if not by_address or not use_index:
        return cut(refs, jobs, interrupt)
    lo = min(job.start for job in jobs)
    hi = max(job.end for job in jobs)
    needles = {n for job in by_address for n in job.matcher.needles}
    needle = re.compile(b"|".join(re.escape(n) for n in sorted(needles)))
    packed = {p for job in by_address for p in (*job.addresses, *job.addresses6)}
    packed6 = {p for job in by_address for p in job.addresses6}
    odd: set[int] = set()
    for group in merge_groups(refs):
        indexes = {}
        for i in group:
            if (index := segment_index(refs[i], build=True)) is not None:
                indexes[i] = index
        if len(indexes) < len(group):
            odd |= cut(refs, jobs, interrupt, [group])
            continue
        if len(group) > 1:
            wanted = _WantedRecords(indexes, packed)
            odd |= cut(refs, by_address, interrupt, [group], wanted)
        else:
            if interrupt is not None and interrupt():
                raise Interrupted
            seg, index = group[0], indexes[group[0]]
            if index.odd:
                odd.add(seg)
            _cut_segment(refs[seg], seg, index, by_address, lo, hi, needle, packed6)
        if generic:
            odd |= cut(refs, generic, interrupt, [group])
    return odd


class _WantedRecords:
    """The records of segments that carry one of ``packed`` (or are not untagged
    Ethernet/IPv4), as :func:`~otwatch.agent.capture.evidence_cut.cut` reads them."""

    def __init__(self, indexes: dict[int, SegmentIndex], packed: set[bytes]) -> None:
        self.indexes = indexes
        self.packed = packed

    def __call__(
        self, segs: _Segments, i: int, lo: int, hi: int, odd: set[int]
    ) -> Iterator[Record]:
        index = self.indexes[i]
        if index.odd:
            odd.add(i)
        mm, end, _mul = segs.open(i)
        if mm is None:
            return
        ts, offs = index.ts, index.offs
        ka, kb = bisect.bisect_left(ts, lo), bisect.bisect_right(ts, hi)
        if ka >= kb:
            return
        flat: list[int] = []
        for packed in self.packed:
            for a, b in _runs(index, packed, ka, kb):
                flat += (a, b)
        other = index.other
        for k in other[bisect.bisect_left(other, ka) : bisect.bisect_left(other, kb)]:
            flat += (k, k + 1)
        released = 0
        for a, b in _union(flat):
            for k in range(a, b):
                pos, nxt = offs[k], offs[k + 1]
                if pos - released >= _RELEASE:  # pages read stay off the resident set
                    mm.madvise(mmap.MADV_DONTNEED, released, pos - released & ~(mmap.PAGESIZE - 1))
                    released += pos - released & ~(mmap.PAGESIZE - 1)
                if pos + _IP4_MIN <= end:
                    _sec, _frac, caplen, _wlen, ether, src, dst = _rec_ip4(mm, pos)
                    if caplen < _IP4_MIN - 16:
                        ether = None
                else:
                    ether = src = dst = None
                yield ts[k], i, pos, nxt, ether, src, dst


def _cut_segment(
    ref: SegmentRef,
    seg: int,
    index: SegmentIndex,
    jobs: Sequence[CutJob],
    lo: int,
    hi: int,
    needle: re.Pattern[bytes],
    packed6: set[bytes],
) -> None:
    """Give each job its records of one segment, from the index."""
    ts, offs = index.ts, index.offs
    ka, kb = bisect.bisect_left(ts, lo), bisect.bisect_right(ts, hi)
    if ka >= kb:
        return
    extra = _frame_by_frame(ref, index, jobs, ka, kb, needle, packed6)
    for j, job in enumerate(jobs):
        if job.linktype != ref.linktype:  # a pcap file has one link type
            continue
        ja = bisect.bisect_left(ts, job.start, ka, kb)
        jb = bisect.bisect_right(ts, job.end, ja, kb)
        if ja >= jb:
            continue
        found: list[tuple[list[int], list[int]]] = []
        if any(index.covers(packed, ja, jb) for packed in job.addresses):
            found = [([ja], [jb])]  # the whole window: the others add nothing
        else:
            for packed in job.addresses:
                a, b = index.runs(packed, ja, jb)
                if a:
                    found.append((a, b))
        more = extra.get(j)
        if more:
            found.append((more, [k + 1 for k in more]))
        if not found:
            continue
        if len(found) == 1:  # one address's runs: sorted and apart already
            a, b = found[0]
        else:
            pairs = _union([x for a, b in found for pair in zip(a, b, strict=True) for x in pair])
            a, b = [s for s, _e in pairs], [e for _s, e in pairs]
        counts = [e - s for s, e in zip(a, b, strict=True)]
        job.extend_segment(seg, [offs[s] for s in a], [offs[e] for e in b], counts)


def _frame_by_frame(
    ref: SegmentRef,
    index: SegmentIndex,
    jobs: Sequence[CutJob],
    ka: int,
    kb: int,
    needle: re.Pattern[bytes],
    packed6: set[bytes],
) -> dict[int, list[int]]:
    """The records of ``[ka, kb)`` that a job's matcher accepts, by job position, among the
    other records (not untagged Ethernet/IPv4 or IPv6) and the IPv6 ones of ``packed6``."""
    other = index.other
    candidates = other[bisect.bisect_left(other, ka) : bisect.bisect_left(other, kb)].tolist()
    for packed in packed6:
        for a, b in _runs(index, packed, ka, kb):
            candidates += range(a, b)
    found: dict[int, list[int]] = {}
    if not candidates:
        return found
    ts, offs, lt = index.ts, index.offs, ref.linktype
    with open(ref.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for k in sorted(set(candidates)) if packed6 else candidates:
            off = offs[k]
            data = mm[off + 16 : offs[k + 1]]
            if needle.search(data) is None:
                continue
            t = ts[k]
            frame = (t, _wlen(mm, off)[0], lt, data)
            for j, job in enumerate(jobs):
                if job.start <= t <= job.end and job.matcher(frame):
                    found.setdefault(j, []).append(k)
    return found


def _runs(index: SegmentIndex, packed: bytes, ka: int, kb: int) -> Iterator[tuple[int, int]]:
    """The runs of records of ``[ka, kb)`` that carry the address ``packed``."""
    return zip(*index.runs(packed, ka, kb), strict=True)
