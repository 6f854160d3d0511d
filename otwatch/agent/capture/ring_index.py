"""An index beside each ring segment, so that an evidence pass reads only its hosts' records.

The writer builds it as it writes (:meth:`IndexBuilder.add` with the frames of each chunk
once it is on disk) and writes it next to the segment when the segment closes,
``<segment>.idx``:

- the offset of every record (and of the end of the last one) and its time, so a window is
  found by bisection and a run of records is a byte range;
- per IPv4 or IPv6 address (source or destination of an untagged Ethernet/IPv4 or IPv6
  frame), the runs of consecutive records that carry it, as record numbers;
- the other records (ARP, VLAN-tagged, short frames, other link types), which the cut still
  tests frame by frame;
- whether the times never go back and whether a timestamp fraction is out of range.

Size: 12 bytes per record, 8 per run of an address (a record is in at most two runs) and 4
per other record, plus 4 or 16 per address: at most 32 bytes per record and address, ~18%
of a ring of 90-byte Modbus frames, ~2% of one of 1,500-byte frames. The index is not
counted in the ring's budget.

Crash safety: the file is written whole and renamed into place, and holds the size and
modification time of its segment and a CRC of its body. :func:`load_index` returns None for
a missing, truncated, corrupt or stale index (the segment changed since), and the reader
walks the segment's record headers instead, as it did without an index.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import zlib
from array import array
from dataclasses import dataclass
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
_MAGIC = b"OTWRIDX1"
_ORDER = 0x01020304
_HEAD = struct.Struct("=8sIIIQqIIIII")
"""magic, byte order, linktype, flags, segment size, segment mtime (ns), records, IPv4 and
IPv6 addresses, runs, other records; then the CRC-32 of the body (after the header)."""
_CRC = struct.Struct("=I")
_MONO, _ODD = 1, 2
_MAX_OFFSET = 0xFFFFFFFF
_rec = struct.Struct("<IIII").unpack_from
_ETH_IP4, _ETH_IP6 = b"\x08\x00", b"\x86\xdd"


def index_path(segment: Path) -> Path:
    return segment.with_name(segment.name + ".idx")


def remove_index(segment: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(index_path(segment))


class IndexBuilder:
    """The index of one segment, built from the chunks written to it (in file order)."""

    __slots__ = ("broken", "end", "fast", "frac_max", "last", "linktype", "mul", "odd", "offs",
                 "other", "pairs", "runs", "ts")  # fmt: skip

    def __init__(self, linktype: int, nanosecond: bool) -> None:
        self.linktype = linktype
        self.fast = linktype == 1
        self.mul = 1 if nanosecond else 1000
        self.frac_max = _NS // self.mul
        self.offs = array("I")
        self.ts = array("q")
        self.other = array("I")
        self.runs: dict[bytes, array[int]] = {}
        """Per packed IPv4 address, flat ``[first, end, first, end, …]`` record numbers (after
        a placeholder run, in arrays made by :meth:`_pair`)."""
        self.pairs: dict[bytes, tuple[array[int], array[int] | None]] = {}
        self.last = -1
        self.odd = False
        self.broken = False
        """Something the index cannot say (a record over the size limit, a segment over
        4 GiB): no index is written and readers walk the segment."""
        self.end = 24

    def add(self, frames: list[Frame]) -> None:
        """Note ``frames``, just written at the end of the segment as records."""
        if self.broken:
            return
        offs_append, ts_append, other_append = self.offs.append, self.ts.append, self.other.append
        pairs, get = self.pairs, self.pairs.get
        fast, last, pos = self.fast, self.last, self.end
        mono = last >= -1
        k = len(self.offs)
        for ts, _wlen, _lt, data in frames:
            offs_append(pos)
            ts_append(ts)
            n = len(data)
            pos += 16 + n
            if ts < last:
                mono = False
            last = ts
            ether = data[12:14]
            if fast and ether == _ETH_IP4 and n >= 34:
                key = data[26:34]
            elif fast and ether == _ETH_IP6 and n >= 54:
                key = data[22:54]
            else:
                other_append(k)
                k += 1
                continue
            got = get(key)
            if got is None:
                got = pairs[key] = self._pair(key)
            r, r2 = got
            if r[-1] == k:
                r[-1] = k + 1
            else:
                r.append(k)
                r.append(k + 1)
            if r2 is not None:
                if r2[-1] == k:
                    r2[-1] = k + 1
                else:
                    r2.append(k)
                    r2.append(k + 1)
            k += 1
        if pos > _MAX_OFFSET:
            self.broken = True
        self.end = pos
        self.last = last if mono else -2

    def _pair(self, key: bytes) -> tuple[array[int], array[int] | None]:
        """The run arrays of a (source, destination) pair (one when they are the same)."""
        half = len(key) // 2
        src, dst = key[:half], key[half:]
        a = self.runs.setdefault(src, array("I", (_MAX_OFFSET, _MAX_OFFSET)))
        if dst == src:
            return a, None
        return a, self.runs.setdefault(dst, array("I", (_MAX_OFFSET, _MAX_OFFSET)))

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
        addresses = sorted(self.runs, key=lambda packed: (len(packed), packed))
        n4 = sum(1 for packed in addresses if len(packed) == 4)
        first = array("I", [0])
        run_a, run_b = array("I"), array("I")
        for packed in addresses:
            flat = self.runs[packed][2:]  # after the placeholder
            run_a.extend(flat[::2])
            run_b.extend(flat[1::2])
            first.append(len(run_a))
        offs = array("I", self.offs)
        offs.append(self.end)
        body = b"".join((offs.tobytes(), self.ts.tobytes(), b"".join(addresses),
                         first.tobytes(), run_a.tobytes(), run_b.tobytes(),
                         self.other.tobytes()))  # fmt: skip
        flags = (_MONO if self.last >= -1 else 0) | (_ODD if self.odd else 0)
        head = _HEAD.pack(_MAGIC, _ORDER, self.linktype, flags, st.st_size, st.st_mtime_ns,
                          len(self.ts), n4, len(addresses) - n4, len(run_a),
                          len(self.other))  # fmt: skip
        target = index_path(segment)
        tmp = target.with_name(target.name + ".tmp")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            # as private as the segment it describes (it names the hosts in it)
            how = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            with os.fdopen(os.open(tmp, how, 0o640), "wb") as f:
                f.write(head + _CRC.pack(zlib.crc32(body)) + body)
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
    return builder.write(segment)


@dataclass(slots=True)
class SegmentIndex:
    """A segment's index as read back (views over the file's bytes)."""

    records: int
    offs: memoryview
    """Offset of every record, then the end of the last one."""
    ts: memoryview
    mono: bool
    odd: bool
    addresses: dict[bytes, tuple[int, int]]
    """Packed IPv4 or IPv6 address → its slice of :attr:`run_a` / :attr:`run_b`."""
    run_a: memoryview
    run_b: memoryview
    other: memoryview


def load_index(segment: Path, limit: int, linktype: int) -> SegmentIndex | None:
    """The index of ``segment`` when it describes the segment as it is now (read up to
    ``limit`` bytes, of ``linktype``); None otherwise."""
    try:
        st = os.stat(segment)
        with open(index_path(segment), "rb") as f:
            data = f.read()
    except OSError:
        return None
    hsize = _HEAD.size + _CRC.size
    if len(data) < hsize:
        return None
    magic, order, lt, flags, size, mtime, n, n4, n6, n_runs, n_other = _HEAD.unpack_from(data)
    n_addr = n4 + n6
    if (
        magic != _MAGIC
        or order != _ORDER
        or lt != linktype
        or size != st.st_size
        or mtime != st.st_mtime_ns
        or limit < size
        or len(data)
        != hsize + 12 * n + 4 + 4 * n4 + 16 * n6 + 4 * (n_addr + 1) + 8 * n_runs + 4 * n_other
        or _CRC.unpack_from(data, _HEAD.size)[0] != zlib.crc32(memoryview(data)[hsize:])
    ):
        return None
    view = memoryview(data)
    pos = hsize

    def take(count: int, size: int) -> memoryview:
        nonlocal pos
        part = view[pos : pos + count * size]
        pos += count * size
        return part.cast("q") if size == 8 else part.cast("I")

    offs = take(n + 1, 4)
    ts = take(n, 8)
    packed = bytes(view[pos : pos + 4 * n4 + 16 * n6])
    pos += len(packed)
    keys = [packed[4 * i : 4 * i + 4] for i in range(n4)]
    keys += [packed[4 * n4 + 16 * i : 4 * n4 + 16 * i + 16] for i in range(n6)]
    first = take(n_addr + 1, 4)
    run_a = take(n_runs, 4)
    run_b = take(n_runs, 4)
    other = take(n_other, 4)
    addresses = {key: (first[i], first[i + 1]) for i, key in enumerate(keys)}
    if n_addr and first[n_addr] != n_runs:
        return None
    return SegmentIndex(n, offs, ts, bool(flags & _MONO), bool(flags & _ODD), addresses,
                        run_a, run_b, other)  # fmt: skip
