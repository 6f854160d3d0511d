"""The evidence pass over the ring, reading each segment through its index when it can.

A segment that is alone in its time range (one writer, the common case), has an index that
still describes it (:func:`~otwatch.agent.capture.ring_index.load_index`) and times that
never go back is not walked: each alert's window is found by bisection of the record times,
its IPv4 addresses' runs of records are taken from the index and clipped to the window, and
their union becomes byte ranges. Only the records that are not untagged Ethernet/IPv4 are
still read and tested frame by frame, as the walk tests them. Every other segment (times
that overlap another writer's, no index, a stale or damaged one) is walked
(:func:`~otwatch.agent.capture.evidence_cut.cut`), and so are all segments for alerts named
by MAC or IPv6 address. Both give each alert the same records in the same order, so the
files are the same bytes (``tests/unit/agent/capture/test_evidence_cut.py``).
"""

from __future__ import annotations

import bisect
import mmap
import re
import struct
from collections.abc import Callable, Sequence

from otwatch.agent.capture.evidence_cut import (
    CutJob,
    Interrupted,
    SegmentRef,
    _union,
    cut,
    merge_groups,
)
from otwatch.agent.capture.ring_index import SegmentIndex, load_index

__all__ = ["cut_pass", "segment_index"]

_wlen = struct.Struct("<12xI").unpack_from


def segment_index(ref: SegmentRef) -> SegmentIndex | None:
    """The segment's index when the pass may use it instead of walking the segment."""
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
    odd: set[int] = set()
    for group in merge_groups(refs):
        index = segment_index(refs[group[0]]) if len(group) == 1 else None
        if index is None:
            odd |= cut(refs, jobs, interrupt, [group])
            continue
        if interrupt is not None and interrupt():
            raise Interrupted
        seg = group[0]
        if index.odd:
            odd.add(seg)
        _cut_segment(refs[seg], seg, index, by_address, lo, hi, needle)
        if generic:
            odd |= cut(refs, generic, interrupt, [group])
    return odd


def _cut_segment(
    ref: SegmentRef,
    seg: int,
    index: SegmentIndex,
    jobs: Sequence[CutJob],
    lo: int,
    hi: int,
    needle: re.Pattern[bytes],
) -> None:
    """Give each job its records of one segment, from the index."""
    ts, offs = index.ts, index.offs
    ka, kb = bisect.bisect_left(ts, lo), bisect.bisect_right(ts, hi)
    if ka >= kb:
        return
    extra = _frame_by_frame(ref, index, jobs, ka, kb, needle)
    run_a, run_b, addresses = index.run_a, index.run_b, index.addresses
    for j, job in enumerate(jobs):
        if job.linktype != ref.linktype:  # a pcap file has one link type
            continue
        ja = bisect.bisect_left(ts, job.start, ka, kb)
        jb = bisect.bisect_right(ts, job.end, ja, kb)
        if ja >= jb:
            continue
        found: list[tuple[list[int], list[int]]] = []
        for packed in job.addresses:
            span = addresses.get(packed)
            if span is None:
                continue
            first = bisect.bisect_right(run_b, ja, *span)  # the first run ending after ja
            stop = bisect.bisect_left(run_a, jb, first, span[1])  # runs starting before jb
            if first >= stop:
                continue
            a, b = run_a[first:stop].tolist(), run_b[first:stop].tolist()
            a[0] = max(a[0], ja)
            b[-1] = min(b[-1], jb)
            if a[0] == ja and b[0] == jb:  # the whole window: the others add nothing
                found = [(a, b)]
                break
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
) -> dict[int, list[int]]:
    """The records of ``[ka, kb)`` that are not untagged Ethernet/IPv4 and that a job's
    matcher accepts, by job position."""
    other = index.other
    oa, ob = bisect.bisect_left(other, ka), bisect.bisect_left(other, kb)
    found: dict[int, list[int]] = {}
    if oa >= ob:
        return found
    ts, offs, lt = index.ts, index.offs, ref.linktype
    with open(ref.path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        for k in other[oa:ob]:
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
