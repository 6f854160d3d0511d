"""Reading the ring's segment files: scan one for its frame count, time span and the end of
its last complete record, and iterate its frames. Readers may be other processes, so an open
segment is read up to what its row says is complete."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from otwatch.agent.capture.pcapfile import MAX_CAPLEN, Frame
from otwatch.agent.capture.ring import _FILE_HDR, _MAGIC_NS, _MAGIC_US, _NS, _UNLIMITED, _rec_unpack


@dataclass(slots=True)
class SegmentScan:
    valid_end: int
    """Bytes of header plus complete records."""
    size: int
    packets: int
    first_ns: int | None
    last_ns: int | None
    linktype: int
    nanosecond: bool


def _open_map(path: Path) -> tuple[mmap.mmap | None, int]:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return None, 0
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), size


def scan_segment(path: Path) -> SegmentScan | None:
    """Walk a ring segment's records; None when it has no valid pcap header."""
    mm, size = _open_map(path)
    if mm is None or size < 24:
        if mm is not None:
            mm.close()
        return None
    try:
        magic, major, _minor, _z, _s, _snap, linktype = _FILE_HDR.unpack_from(mm, 0)
        if magic not in (_MAGIC_US, _MAGIC_NS) or major != 2:
            return None
        nanosecond = magic == _MAGIC_NS
        mul = 1 if nanosecond else 1000
        pos, packets = 24, 0
        first = last = None
        while pos + 16 <= size:
            sec, frac, caplen, _wlen = _rec_unpack(mm, pos)
            if caplen > MAX_CAPLEN or pos + 16 + caplen > size:
                break
            ts = sec * _NS + frac * mul
            if first is None or ts < first:
                first = ts
            if last is None or ts > last:
                last = ts
            packets += 1
            pos += 16 + caplen
        return SegmentScan(pos, size, packets, first, last, linktype & 0xFFFF, nanosecond)
    finally:
        mm.close()


def iter_segment(
    path: Path, limit: int | None = None, start_ns: int | None = None, end_ns: int | None = None
) -> Iterator[Frame]:
    """Frames of a ring segment up to byte ``limit`` (complete records only), optionally
    only those with ``start_ns <= ts <= end_ns``."""
    try:
        mm, size = _open_map(path)
    except FileNotFoundError:
        return
    if mm is None:
        return
    try:
        if size < 24:
            return
        magic, _major, _minor, _z, _s, _snap, linktype = _FILE_HDR.unpack_from(mm, 0)
        if magic not in (_MAGIC_US, _MAGIC_NS):
            return
        mul = 1 if magic == _MAGIC_NS else 1000
        lt = linktype & 0xFFFF
        end = size if limit is None else min(size, limit)
        lo = -1 if start_ns is None else start_ns
        hi = _UNLIMITED if end_ns is None else end_ns
        pos = 24
        ns = _NS
        while pos + 16 <= end:
            sec, frac, caplen, wlen = _rec_unpack(mm, pos)
            nxt = pos + 16 + caplen
            if caplen > MAX_CAPLEN or nxt > end:
                return
            ts = sec * ns + frac * mul
            if lo <= ts <= hi:
                yield (ts, wlen, lt, mm[pos + 16 : nxt])
            pos = nxt
    finally:
        mm.close()
