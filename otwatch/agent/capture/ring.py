"""The rolling PCAP ring: every captured frame, raw, in segment files under a disk budget.

Frames are never dissected here: a 16-byte record header is packed and the bytes appended to
an in-memory chunk that is written with one ``os.write`` per ~1 MiB (and at every ``tick``,
about once a second). Chunks hold whole records, so after a failed write the file is cut back
to its last complete record. Segments rotate by size or by traffic time; after each rotation
the oldest closed segments (of any writer) are deleted until the ring fits its budget. The
frames of each chunk written are noted for the segment's index (:mod:`.ring_index`), written
beside the segment when it closes and deleted with it.

Each segment has a row in ``pcap_segments`` (path, first/last timestamp, packets, bytes) that
evidence extraction uses to find the files of a time window. The row of an open segment is
refreshed at every tick, and ``bytes`` never counts a record that is not complete on disk, so
other processes can read an open segment up to ``bytes`` safely.

Disk full (ENOSPC/EDQUOT): the writer evicts the oldest closed segments and tries again; with
nothing left to evict it starts a new segment in place of the current one. What cannot be
written is counted in ``dropped``; capture and detection go on either way. On start,
:func:`~otwatch.agent.capture.ring_repair.repair_ring` fixes what a crash left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from otwatch.agent.capture.config import MiB, RingConfig
from otwatch.agent.capture.pcapfile import Frame
from otwatch.agent.capture.pcapwrite import file_header
from otwatch.agent.capture.ring_index import IndexBuilder, remove_index
from otwatch.agent.store.db import Store
from otwatch.agent.store.models import SensorState
from otwatch.agent.store.models_pcap import PcapSegment
from otwatch.agent.store.state import get_state
from otwatch.errors import OtwatchError

__all__ = [
    "EVICTED_STATE",
    "RingError",
    "RingStats",
    "RingWriter",
    "resolve_path",
    "ring_budget",
    "store_path",
]

EVICTED_STATE = "pcap_ring_evicted"
"""sensor_state key: ``{"until_ns": newest packet time evicted, "at_ns": wall time}``."""

_NS = 1_000_000_000
_MAGIC_US, _MAGIC_NS = 0xA1B2C3D4, 0xA1B23C4D
_FILE_HDR = struct.Struct("<IHHiIII")
_REC = struct.Struct("<IIII")
_rec_unpack = _REC.unpack_from
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_UNLIMITED = 1 << 62


class RingError(OtwatchError):
    """The ring directory cannot be used (not writable, I/O error other than disk full)."""


@dataclass(slots=True)
class RingStats:
    packets: int = 0
    """Frames written to disk."""
    bytes: int = 0
    """Bytes written to disk (record headers included)."""
    segments: int = 0
    """Segments closed by this writer."""
    evicted: int = 0
    """Segments this writer deleted for the budget or for free space."""
    dropped: int = 0
    """Frames that could not be written (disk full with nothing left to evict)."""
    disk_full: int = 0
    """Times a write failed for lack of space."""
    last_disk_full_ns: int | None = None
    high_water_ns: int = 0
    """Newest packet time written."""

    def as_dict(self) -> dict:
        return asdict(self)


def ring_budget(config: RingConfig) -> int:
    """The smaller of the byte budget and the share of the ring's filesystem."""
    budgets = []
    if config.max_bytes:
        budgets.append(config.max_bytes)
    if config.max_percent:
        st = os.statvfs(config.directory)
        budgets.append(int(st.f_blocks * st.f_frsize * config.max_percent / 100))
    return min(budgets) if budgets else _UNLIMITED


def store_path(path: Path, data_dir: Path) -> str:
    """How a path is recorded in the store: relative to the data directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path(data_dir).resolve()))
    except ValueError:
        return str(Path(path).resolve())


def resolve_path(recorded: str, data_dir: Path) -> Path:
    return Path(data_dir) / recorded


class _Segment:
    __slots__ = (
        "buf",
        "deadline_ns",
        "fd",
        "first_ns",
        "frames",
        "index",
        "key",
        "last_ns",
        "p_bytes",
        "p_first",
        "p_last",
        "p_packets",
        "packets",
        "path",
        "row_id",
        "size",
    )

    def __init__(
        self, key: tuple[int, bool], path: Path, fd: int, row_id: int, index: bool
    ) -> None:
        self.key = key
        self.index = IndexBuilder(*key) if index else None
        self.frames: list[Frame] | None = [] if index else None
        """Frames buffered, for the index once they are on disk."""
        self.path = path
        self.fd = fd
        self.row_id = row_id
        self.size = 0  # bytes of complete records on disk, header included
        self.packets = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.deadline_ns = _UNLIMITED
        self.buf: list[bytes] = []
        self.p_bytes = 0
        self.p_packets = 0
        self.p_first = _UNLIMITED
        self.p_last = 0


class RingWriter:
    """Appends frames to this writer's open segments; one open segment per link type."""

    def __init__(
        self,
        store: Store,
        config: RingConfig,
        writer: str = "w0",
        *,
        wall_ns=time.time_ns,
    ) -> None:
        self.store = store
        self.config = config
        self.writer = writer
        self.wall_ns = wall_ns
        self.data_dir = Path(store.data_dir)
        self.directory = Path(config.directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RingError(
                f"cannot create PCAP ring directory {self.directory}: {exc.strerror}"
            ) from None
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise RingError(f"PCAP ring directory {self.directory} is not writable")
        self.budget = ring_budget(config)
        self.segment_bytes = max(MiB, min(config.segment_bytes, self.budget // 8))
        self.segment_ns = max(1, int(config.segment_seconds * _NS))
        self.buffer_bytes = max(64 * 1024, config.buffer_bytes)
        self.stats = RingStats()
        self._open: dict[tuple[int, bool], _Segment] = {}
        self._blocked: set[tuple[int, bool]] = set()
        """Keys whose new segment could not be created (disk full); retried at each tick."""
        self._seq = 0

    # -- hot path -----------------------------------------------------------------------

    def write_batch(self, frames: Iterable[Frame], linktype: int, nanosecond: bool) -> None:
        """Append frames that share a link type (as a capture source delivers them)."""
        key = (linktype, nanosecond)
        seg = self._open.get(key)
        if seg is None and key not in self._blocked:
            seg = self._new_segment(key)
        pack = _REC.pack
        ns = _NS
        flush_at = self.buffer_bytes
        us = not nanosecond
        if seg is not None:
            append = seg.buf.append
            noted = seg.frames
            limit = self.segment_bytes - seg.size
            size, count = seg.p_bytes, seg.p_packets
            first, last = seg.p_first, seg.p_last
            deadline = seg.deadline_ns
        for frame in frames:
            ts, wlen, _lt, data = frame
            if seg is not None and (ts >= deadline or size >= limit or size >= flush_at):
                seg.p_bytes, seg.p_packets, seg.p_first, seg.p_last = size, count, first, last
                if size >= flush_at and ts < deadline and size < limit:
                    self._flush(seg)
                    seg = self._open.get(key)
                else:
                    self._close_segment(seg)
                    self._enforce_budget()
                    seg = None
                if seg is None and key not in self._blocked:
                    seg = self._new_segment(key)
                if seg is not None:
                    append = seg.buf.append
                    noted = seg.frames
                    limit = self.segment_bytes - seg.size
                    size, count = seg.p_bytes, seg.p_packets
                    first, last = seg.p_first, seg.p_last
                    deadline = seg.deadline_ns
            if seg is None:  # disk full and nothing to evict: retried at the next tick
                self.stats.dropped += 1
                continue
            if deadline == _UNLIMITED:
                deadline = seg.deadline_ns = ts + self.segment_ns
            sec, frac = divmod(ts, ns)
            if us:
                frac //= 1000
            n = len(data)
            append(pack(sec, frac, n, wlen))
            append(data)
            if noted is not None:
                noted.append(frame)
            size += 16 + n
            count += 1
            if ts > last:
                last = ts
            if ts < first:
                first = ts
        if seg is not None:
            seg.p_bytes, seg.p_packets, seg.p_first, seg.p_last = size, count, first, last

    def write_raw(self, frames: list[Frame], raw: bytes, linktype: int, nanosecond: bool) -> None:
        """Append ``frames`` given also as ``raw``: their records exactly as a segment holds
        them (little-endian 16-byte headers in the segment's time unit, fractions in range,
        then the data), as ``CaptureFile.chunks`` gives them. The bytes are copied as they are;
        a chunk that would cross a segment's size or time limit goes frame by frame."""
        seg = self._open.get((linktype, nanosecond))
        if seg is not None and frames:
            stamps = [frame[0] for frame in frames]
            first, last = min(stamps), max(stamps)
            size = seg.p_bytes + len(raw)
            deadline = seg.deadline_ns
            if deadline == _UNLIMITED:
                deadline = seg.deadline_ns = first + self.segment_ns
            if last < deadline and size < self.segment_bytes - seg.size:
                seg.buf.append(raw)
                if seg.frames is not None:
                    seg.frames.extend(frames)
                seg.p_bytes = size
                seg.p_packets += len(frames)
                if first < seg.p_first:
                    seg.p_first = first
                if last > seg.p_last:
                    seg.p_last = last
                if size >= self.buffer_bytes:
                    self._flush(seg)
                return
        self.write_batch(frames, linktype, nanosecond)

    def write(
        self, ts_ns: int, wire_len: int, linktype: int, data: bytes, nanosecond: bool
    ) -> None:
        """Append one frame (replay of files whose frames may change link type)."""
        self.write_batch(((ts_ns, wire_len, linktype, data),), linktype, nanosecond)

    # -- periodic work ------------------------------------------------------------------

    def tick(self) -> None:
        """Write buffered frames and refresh the index rows of open segments (about 1/s)."""
        self._blocked.clear()
        for seg in list(self._open.values()):
            if seg.p_packets:
                self._flush(seg)
        self._update_rows([s for s in self._open.values() if s.packets], closed=False)

    def close(self) -> None:
        """Write everything and close every open segment (clean shutdown)."""
        for seg in list(self._open.values()):
            self._close_segment(seg)
        self._enforce_budget()

    # -- segments -----------------------------------------------------------------------

    def _new_segment(self, key: tuple[int, bool]) -> _Segment | None:
        now = self.wall_ns()
        self._seq += 1
        path = self.directory / f"{self.writer}-{now:019d}-{self._seq:04d}.pcap"
        with self.store.session() as session:
            row = PcapSegment(
                path=store_path(path, self.data_dir),
                writer=self.writer,
                owner_pid=os.getpid(),
                linktype=key[0],
                nanosecond=key[1],
                first_ns=None,
                last_ns=None,
                packets=0,
                bytes=24,
                closed=False,
                created_ns=now,
            )
            session.add(row)
            session.flush()
            row_id = row.id
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        except OSError as exc:
            self._delete_rows([row_id])
            raise RingError(f"cannot create PCAP segment {path}: {exc.strerror}") from None
        seg = _Segment(key, path, fd, row_id, self.config.index)
        header = file_header(*key)
        for _ in range(3):
            if self._write_all(seg, header, 0):
                self._open[key] = seg
                return seg
            if not self._free_space():
                break
        os.close(fd)
        _unlink(path)
        self._delete_rows([row_id])
        self._blocked.add(key)
        return None

    def _close_segment(self, seg: _Segment) -> None:
        if seg.p_packets:
            self._flush(seg)
        if self._open.get(seg.key) is seg:
            del self._open[seg.key]
        with contextlib.suppress(OSError):
            os.close(seg.fd)
        if seg.packets == 0:
            _unlink(seg.path)
            self._delete_rows([seg.row_id])
            return
        if seg.index is not None:
            seg.index.write(seg.path)
        self.stats.segments += 1
        self._update_rows([seg], closed=True)

    def _update_rows(self, segments: list[_Segment], closed: bool) -> None:
        if not segments:
            return
        with self.store.session() as session:
            for seg in segments:
                session.execute(
                    update(PcapSegment)
                    .where(PcapSegment.id == seg.row_id)
                    .values(
                        first_ns=seg.first_ns,
                        last_ns=seg.last_ns,
                        packets=seg.packets,
                        bytes=seg.size,
                        closed=closed,
                    )
                )

    def _delete_rows(self, ids: list[int]) -> None:
        with self.store.session() as session:
            session.execute(delete(PcapSegment).where(PcapSegment.id.in_(ids)))

    # -- writing ------------------------------------------------------------------------

    def _flush(self, seg: _Segment) -> None:
        """Write the segment's buffered records; on disk full, make room or drop them."""
        data = b"".join(seg.buf)
        packets, first, last = seg.p_packets, seg.p_first, seg.p_last
        noted = seg.frames
        if noted is not None:
            seg.frames = []
        seg.buf.clear()
        seg.p_bytes = seg.p_packets = 0
        seg.p_first, seg.p_last = _UNLIMITED, 0
        target = seg
        for _ in range(4):
            if self._write_all(target, data, packets):
                if target.index is not None and noted is not None:
                    target.index.add(noted)
                if target.first_ns is None or first < target.first_ns:
                    target.first_ns = first
                if target.last_ns is None or last > target.last_ns:
                    target.last_ns = last
                if last > self.stats.high_water_ns:
                    self.stats.high_water_ns = last
                return
            if self._free_space():
                continue
            # Nothing else to evict: give up the current segment to keep the newest frames.
            key = target.key
            self._close_segment(target)
            self._evict_closed(limit_bytes=0, force_one=True)
            fresh = self._new_segment(key)
            if fresh is None:
                break
            target = fresh
        self.stats.dropped += packets

    def _write_all(self, seg: _Segment, data: bytes, packets: int) -> bool:
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(seg.fd, view[done:])
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise RingError(f"cannot write PCAP segment {seg.path}: {exc.strerror}") from None
            self.stats.disk_full += 1
            self.stats.last_disk_full_ns = self.wall_ns()
            try:
                os.ftruncate(seg.fd, seg.size)
                os.lseek(seg.fd, 0, os.SEEK_END)
            except OSError:
                pass
            return False
        seg.size += len(data)
        seg.packets += packets
        self.stats.packets += packets
        self.stats.bytes += len(data)
        return True

    # -- budget -------------------------------------------------------------------------

    def _enforce_budget(self) -> None:
        with self.store.session() as session:
            total = session.scalar(select(func.coalesce(func.sum(PcapSegment.bytes), 0))) or 0
        if total > self.budget:
            self._evict_closed(limit_bytes=total - self.budget)

    def _free_space(self) -> bool:
        """Disk full: delete the oldest closed segment(s); False when there is none."""
        return self._evict_closed(limit_bytes=self.segment_bytes, force_one=True) > 0

    def _evict_closed(self, limit_bytes: int, force_one: bool = False) -> int:
        """Delete oldest closed segments until ``limit_bytes`` are freed; returns how many."""
        freed = evicted = 0
        newest_evicted = 0
        with self.store.session() as session:
            while freed < limit_bytes or (force_one and evicted == 0):
                rows = session.execute(
                    select(PcapSegment.id, PcapSegment.path, PcapSegment.bytes, PcapSegment.last_ns)
                    .where(PcapSegment.closed.is_(True))
                    .order_by(PcapSegment.first_ns, PcapSegment.id)
                    .limit(32)
                ).all()
                if not rows:
                    break
                gone = []
                for row_id, path, size, last_ns in rows:
                    _unlink(resolve_path(path, self.data_dir))
                    gone.append(row_id)
                    freed += size
                    evicted += 1
                    newest_evicted = max(newest_evicted, last_ns or 0)
                    if freed >= limit_bytes and (evicted or not force_one):
                        break
                session.execute(delete(PcapSegment).where(PcapSegment.id.in_(gone)))
            if evicted:
                before = get_state(session, EVICTED_STATE, {}) or {}
                value = {
                    "until_ns": max(newest_evicted, int(before.get("until_ns", 0))),
                    "at_ns": self.wall_ns(),
                }
                # an upsert: several writers may evict for the first time at once
                session.execute(
                    sqlite_insert(SensorState)
                    .values(key=EVICTED_STATE, value={"v": value})
                    .on_conflict_do_update(index_elements=["key"], set_={"value": {"v": value}})
                )
        self.stats.evicted += evicted
        return evicted


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    remove_index(path)
