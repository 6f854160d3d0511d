"""An index beside each ring segment, so that an evidence pass reads only its hosts' records.

The writer notes the frames of each chunk once it is on disk (:meth:`IndexBuilder.add`) and
writes the index next to the segment when the segment closes, ``<segment>.idx``. It comes in
two forms, told apart by their magic:

- **as written** (``OTWRIDXP``), cheap for the capture's hot path: the offset of every record
  (and of the end of the last one), its time, and the number of its address pair (source and
  destination of an untagged Ethernet/IPv4 or IPv6 frame), 0 for the other records (ARP,
  VLAN-tagged, short frames, other link types), and the table of pairs. Each step is one
  C-level ``map`` over the chunk (~0.3 µs per frame, where keeping runs of records per
  address frame by frame in Python cost ~0.5–0.7 µs);
- **as read** (``OTWRIDX2``): per address pair the numbers of the records that carry it,
  ascending, and the list of the other records, which the cut still tests frame by frame.
  :func:`load_index` makes it from the written form the first time an evidence pass needs
  the segment (~50 ns per record, in the evidence work, off the capture's path) and puts it
  in place of the written form, so later passes read it as it is.

Both hold whether the times never go back and whether a timestamp fraction is out of range.
Size: 16 bytes per record plus 12 or 36 per address pair as written, 16 per record plus
12 or 36 per pair as read: ~18% of a ring of 90-byte Modbus frames, ~1% of one of
1,500-byte frames. Neither is counted in the ring's budget.

Crash safety: a file is written whole and renamed into place, and holds the size and
modification time of its segment and a CRC of its body. :func:`load_index` returns None for
a missing, truncated, corrupt or stale index (the segment changed since), and the reader
walks the segment's record headers instead (or indexes it again, see
:func:`~otwatch.agent.capture.evidence_indexed.segment_index`).
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import struct
import zlib
from array import array
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, count, repeat
from operator import add, and_, eq, itemgetter, le, not_, sub
from pathlib import Path

from otwatch.agent.capture.pcapfile import MAX_CAPLEN, Frame

__all__ = [
    "IndexBuilder",
    "SegmentIndex",
    "index_path",
    "index_segment",
    "load_index",
    "remove_index",
]

_NS = 1_000_000_000
_MAGIC = b"OTWRIDX2"
"""As read: the records of each address."""
_MAGIC_PAIRS = b"OTWRIDXP"
"""As written: a pair number per record."""
_ORDER = 0x01020304
_HEAD = struct.Struct("=8sIIIQqIIIII")
"""magic, byte order, linktype, flags, segment size, segment mtime (ns), records, IPv4
pairs, IPv6 pairs, then the records listed under the pairs and the other records (as read)
or 0, 0 (as written); then the CRC-32 of the body (after the header)."""
_CRC = struct.Struct("=I")
_MONO, _ODD = 1, 2
_MAX_OFFSET = 0xFFFFFFFF
_rec = struct.Struct("<IIII").unpack_from
_ETH_IP4, _ETH_IP6 = b"\x08\x00", b"\x86\xdd"
_ts_of, _data_of = itemgetter(0), itemgetter(3)
_ether_of = itemgetter(slice(12, 14))
_pair4_of = itemgetter(slice(26, 34))
_holds_ip4 = (33).__lt__
"""34 bytes or more: an Ethernet header and IPv4 addresses."""


def index_path(segment: Path) -> Path:
    return segment.with_name(segment.name + ".idx")


def remove_index(segment: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(index_path(segment))


class IndexBuilder:
    """The index of one segment, built from the chunks written to it (in file order)."""

    __slots__ = ("broken", "end", "fast", "frac_max", "ids", "last", "linktype", "mul",
                 "new_numbers", "odd", "offs", "pairs4", "pairs6", "ts")  # fmt: skip

    def __init__(self, linktype: int, nanosecond: bool) -> None:
        self.linktype = linktype
        self.fast = linktype == 1
        self.mul = 1 if nanosecond else 1000
        self.frac_max = _NS // self.mul
        self.offs = array("I")
        self.ts = array("q")
        self.ids = array("I")
        """Per record, the number of its address pair, 0 for the other records."""
        self.pairs4: dict[bytes, int] = {}
        """Packed IPv4 (source, destination) → its number (unique, not consecutive)."""
        self.pairs6: dict[bytes, int] = {}
        self.new_numbers = count(1)
        """A pair's number: the one offered when it was first seen (``dict.setdefault``
        takes one per record, so numbers are unique but not consecutive)."""
        self.last = -1
        self.odd = False
        self.broken = False
        """Something the index cannot say (a record over the size limit, a segment over
        4 GiB): no index is written and readers walk the segment."""
        self.end = 24

    def add(self, frames: list[Frame]) -> None:
        """Note ``frames``, just written at the end of the segment as records."""
        if self.broken or not frames:
            return
        datas = list(map(_data_of, frames))
        stamps = list(map(_ts_of, frames))
        lengths = list(map(len, datas))
        offs = list(accumulate(map(add, lengths, repeat(16)), initial=self.end))
        self.end = offs.pop()
        if self.end > _MAX_OFFSET:  # offsets are 32-bit: a segment over 4 GiB has no index
            self.broken = True
            return
        self.offs.fromlist(offs)
        self.ts.fromlist(stamps)
        if self.last != -2:
            mono = stamps[0] >= self.last and all(map(le, stamps, stamps[1:]))
            self.last = stamps[-1] if mono else -2
        if not self.fast:
            self.ids.fromlist([0] * len(frames))
            return
        ethers = list(map(_ether_of, datas))
        if ethers.count(_ETH_IP4) == len(ethers) and min(lengths) >= 34:
            # the common case: untagged IPv4 only
            self.ids.fromlist(
                list(map(self.pairs4.setdefault, map(_pair4_of, datas), self.new_numbers))
            )
            return
        ip4 = list(map(and_, map(eq, ethers, repeat(_ETH_IP4)), map(_holds_ip4, lengths)))
        ids = [0] * len(frames)
        deque(map(ids.__setitem__, compress(range(len(ids)), ip4),
                  map(self.pairs4.setdefault, map(_pair4_of, compress(datas, ip4)),
                      self.new_numbers)), maxlen=0)  # fmt: skip
        for i in compress(range(len(ids)), map(not_, ip4)):
            if ethers[i] == _ETH_IP6 and lengths[i] >= 54:
                ids[i] = self.pairs6.setdefault(datas[i][22:54], next(self.new_numbers))
        self.ids.fromlist(ids)

    def scan(self, data: bytes | mmap.mmap, start: int, stop: int) -> None:
        """Note the records of ``data[start:stop]``, the segment's from ``start`` on."""
        frames: list[Frame] = []
        mul, frac_max, lt, pos = self.mul, self.frac_max, self.linktype, start
        while pos + 16 <= stop:
            sec, frac, caplen, wlen = _rec(data, pos)
            nxt = pos + 16 + caplen
            if caplen > MAX_CAPLEN or nxt > stop:
                break
            if frac >= frac_max:
                self.odd = True
            frames.append((sec * _NS + frac * mul, wlen, lt, data[pos + 16 : nxt]))
            pos = nxt
            if len(frames) >= 4096:
                self.add(frames)
                frames = []
        self.add(frames)
        if pos != stop:
            self.broken = True

    def write(self, segment: Path) -> bool:
        """Write the index beside the closed ``segment``; False (no index) when the builder
        cannot describe it or the segment is not what it saw."""
        remove_index(segment)
        try:
            st = os.stat(segment)
        except OSError:
            return False
        if self.broken or st.st_size != self.end or not self.offs:
            return False
        numbers = array("I", chain(self.pairs4.values(), self.pairs6.values()))
        parts: list[bytes | memoryview] = [
            memoryview(self.offs).cast("B"),
            array("I", [self.end]).tobytes(),
            memoryview(self.ts).cast("B"),
            *self.pairs4,
            *self.pairs6,
            memoryview(numbers).cast("B"),
            memoryview(self.ids).cast("B"),
        ]
        flags = (_MONO if self.last >= -1 else 0) | (_ODD if self.odd else 0)
        head = _HEAD.pack(_MAGIC_PAIRS, _ORDER, self.linktype, flags, st.st_size,
                          st.st_mtime_ns, len(self.ts), len(self.pairs4), len(self.pairs6),
                          0, 0)  # fmt: skip
        return _put(index_path(segment), head, parts)


def _put(target: Path, head: bytes, parts: list[bytes | memoryview]) -> bool:
    """Write ``head``, the CRC of ``parts`` and ``parts`` to ``target`` whole (a temporary
    file renamed into place), without joining them in memory."""
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    tmp = target.with_name(target.name + ".tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        # as private as the segment it describes (it names the hosts in it)
        how = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(tmp, how, 0o640), "wb") as f:
            f.write(head + _CRC.pack(crc))
            f.writelines(parts)
        os.replace(tmp, target)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def index_segment(segment: Path, linktype: int, nanosecond: bool) -> bool:
    """Index a closed segment by walking its records (a segment written without an index, or
    closed by the crash repair)."""
    builder = IndexBuilder(linktype, nanosecond)
    try:
        with open(segment, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= 24:
                return False
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                builder.scan(mm, 24, size)
    except OSError:
        return False
    if builder.write(segment) and segment.exists():
        return True
    remove_index(segment)  # evicted meanwhile: no index without its segment
    return False


@dataclass(slots=True)
class SegmentIndex:
    """A segment's index as read back (views over the file's bytes)."""

    records: int
    offs: memoryview
    """Offset of every record, then the end of the last one."""
    ts: memoryview
    mono: bool
    odd: bool
    addresses: dict[bytes, list[tuple[int, int]]]
    """Packed IPv4 or IPv6 address → the slices of :attr:`carried` of its address pairs."""
    carried: memoryview
    """Per address pair in turn, the numbers of the records that carry it, ascending."""
    other: memoryview
    merged: dict[bytes, Sequence[int]] = field(default_factory=dict)
    """Per address in more than one pair, its records, ascending (made when first asked)."""

    def numbers(self, packed: bytes) -> Sequence[int]:
        """The numbers of the records that carry ``packed``, ascending."""
        spans = self.addresses.get(packed)
        if not spans:
            return ()
        if len(spans) == 1:
            return self.carried[spans[0][0] : spans[0][1]]
        found = self.merged.get(packed)
        if found is None:
            carried = self.carried
            parts = (carried[a:b] for a, b in spans)
            found = self.merged[packed] = array("I", sorted(chain.from_iterable(parts)))
        return found

    def covers(self, packed: bytes, ka: int, kb: int) -> bool:
        """Whether every record of ``[ka, kb)`` carries ``packed``."""
        spans = self.addresses.get(packed)
        if not spans:
            return False
        if sum(b - a for a, b in spans) == self.records:  # every record of the segment
            return True
        numbers = self.numbers(packed)
        lo = bisect.bisect_left(numbers, ka)
        return lo + kb - ka <= len(numbers) and numbers[lo + kb - ka - 1] == kb - 1

    def runs(self, packed: bytes, ka: int, kb: int) -> tuple[list[int], list[int]]:
        """Where the runs of records of ``[ka, kb)`` that carry ``packed`` start, and where
        they end (exclusive)."""
        numbers = self.numbers(packed)
        lo = bisect.bisect_left(numbers, ka)
        hi = bisect.bisect_left(numbers, kb, lo)
        if lo >= hi:
            return [], []
        first, last = numbers[lo], numbers[hi - 1]
        if last - first == hi - lo - 1:  # every record in between: one run
            return [first], [last + 1]
        numbers = numbers[lo:hi]
        later = numbers[1:]
        ends = bytes(map((1).__lt__, map(sub, later, numbers)))  # 1 where a run ends
        return [first, *compress(later, ends)], [*map((1).__add__, compress(numbers, ends)),
                                                 last + 1]  # fmt: skip


def load_index(segment: Path, limit: int, linktype: int) -> SegmentIndex | None:
    """The index of ``segment`` when it describes the segment as it is now (read up to
    ``limit`` bytes, of ``linktype``); None otherwise. An index as written is turned into
    the form as read, and that is put in its place for the next reader."""
    data = _read_checked(segment, limit, linktype)
    if data is None or data[:8] == _MAGIC:
        return _parse(data) if data is not None else None
    try:
        head, parts = _as_read(data)
    except (KeyError, IndexError, ValueError):  # checked, yet not what a writer writes
        return None
    del data  # the parts still view what they need of it
    if _put(index_path(segment), head, parts):
        if not segment.exists():  # evicted meanwhile (segment first, then its index):
            remove_index(segment)  # leave no index behind without its segment
            return None
        del head, parts  # read back rather than joined: less memory at once
        data = _read_checked(segment, limit, linktype)
        return _parse(data) if data is not None and data[:8] == _MAGIC else None
    crc = 0  # cannot write beside the segment: the next pass derives it again
    for part in parts:
        crc = zlib.crc32(part, crc)
    return _parse(b"".join((head, _CRC.pack(crc), *parts)))


def _read_checked(segment: Path, limit: int, linktype: int) -> bytes | None:
    """The bytes of the segment's index, in either form, when they describe it as it is."""
    try:
        st = os.stat(segment)
        with open(index_path(segment), "rb") as f:
            data = f.read()
    except OSError:
        return None
    hsize = _HEAD.size + _CRC.size
    if len(data) < hsize:
        return None
    magic, order, lt, _flags, size, mtime, n, c1, c2, c3, c4 = _HEAD.unpack_from(data)
    if magic == _MAGIC:
        expected = 12 * n + 4 + 8 * c1 + 32 * c2 + 4 * (c1 + c2 + 1) + 4 * c3 + 4 * c4
    elif magic == _MAGIC_PAIRS:
        expected = 16 * n + 4 + 12 * c1 + 36 * c2
    else:
        return None
    if (
        order != _ORDER
        or lt != linktype
        or size != st.st_size
        or mtime != st.st_mtime_ns
        or limit < size
        or len(data) != hsize + expected
        or _CRC.unpack_from(data, _HEAD.size)[0] != zlib.crc32(memoryview(data)[hsize:])
    ):
        return None
    return data


def _parse(data: bytes) -> SegmentIndex | None:
    """The index as read, from its checked bytes."""
    _m, _o, _lt, flags, _s, _t, n, p4, p6, n_carried, n_other = _HEAD.unpack_from(data)
    view = memoryview(data)
    pos = _HEAD.size + _CRC.size

    def take(count: int, size: int) -> memoryview:
        nonlocal pos
        part = view[pos : pos + count * size]
        pos += count * size
        return part.cast("q") if size == 8 else part.cast("I")

    offs = take(n + 1, 4)
    ts = take(n, 8)
    keys = [bytes(view[pos + 8 * i : pos + 8 * i + 8]) for i in range(p4)]
    pos += 8 * p4
    keys += [bytes(view[pos + 32 * i : pos + 32 * i + 32]) for i in range(p6)]
    pos += 32 * p6
    first = take(p4 + p6 + 1, 4)
    carried = take(n_carried, 4)
    other = take(n_other, 4)
    if first[p4 + p6] != n_carried:
        return None
    addresses: dict[bytes, list[tuple[int, int]]] = {}
    for i, key in enumerate(keys):
        half = len(key) // 2
        span = (first[i], first[i + 1])
        addresses.setdefault(key[:half], []).append(span)
        if key[half:] != key[:half]:
            addresses.setdefault(key[half:], []).append(span)
    return SegmentIndex(n, offs, ts, bool(flags & _MONO), bool(flags & _ODD), addresses,
                        carried, other)  # fmt: skip


def _as_read(data: bytes) -> tuple[bytes, list[bytes | memoryview]]:
    """The header and body parts of the index as read (the records of each address pair),
    from the checked bytes of one as written: every record is appended to the list of its
    pair (or of the other records), in record order, so each list comes out ascending."""
    _m, order, lt, flags, size, mtime, n, p4, p6, _z, _z2 = _HEAD.unpack_from(data)
    view = memoryview(data)
    pos = _HEAD.size + _CRC.size
    offs_ts = view[pos : pos + 12 * n + 4]
    keys = view[pos + 12 * n + 4 : pos + 12 * n + 4 + 8 * p4 + 32 * p6]
    pos += 12 * n + 4 + 8 * p4 + 32 * p6
    numbers = view[pos : pos + 4 * (p4 + p6)].cast("I")
    ids = view[pos + 4 * (p4 + p6) :].cast("I")
    other = array("I")
    lists = {number: array("I") for number in numbers}
    if len(lists) != p4 + p6 or 0 in lists:
        raise ValueError("pair numbers repeat")
    lists[0] = other
    deque(map(array.append, map(lists.__getitem__, ids), range(n)), maxlen=0)
    first = array("I", [0])
    for number in numbers:
        first.append(first[-1] + len(lists[number]))
    parts: list[bytes | memoryview] = [offs_ts, keys, memoryview(first).cast("B")]
    parts += (memoryview(lists[number]).cast("B") for number in numbers)
    parts.append(memoryview(other).cast("B"))
    head = _HEAD.pack(_MAGIC, order, lt, flags, size, mtime, n, p4, p6, first[-1], len(other))
    return head, parts
