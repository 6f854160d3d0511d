"""Capture file reader for classic pcap and pcapng, pure Python and built for speed.

Iterating a :class:`CaptureFile` yields plain tuples ``(ts_ns, wire_len, linktype, data)``:
tuples, not objects, because this is the sensor's hot path. The file is read in 1 MiB chunks
and records are sliced out with precompiled ``struct`` objects.

Bad data never raises during iteration: reading stops and :attr:`CaptureFile.problem` says
why (truncated file, absurd record header, corrupt pcapng block). Only operating-system errors
raise, as :class:`CaptureFileError`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from itertools import islice
from types import TracebackType
from typing import BinaryIO

from otwatch.agent.capture.pcapformat import (
    _EPB,
    _IDB,
    _NS,
    _OPB,
    _PCAP_NS,
    _PCAP_US,
    _SPB,
    _U32,
    MAX_CAPLEN,
    Frame,
)
from otwatch.agent.capture.pcapng_blocks import (
    _EPB_BODY,
    _PCAPNG_SHB,
    _check_shb,
    _Corrupt,
    _Interface,
    _packet_block,
    _parse_idb,
    _partial_packet,
    _pcapng_block_header,
)
from otwatch.errors import OtwatchError

__all__ = [
    "MAX_CAPLEN",
    "CaptureFile",
    "CaptureFileError",
    "Frame",
    "open_capture",
]


_CHUNK = 1 << 20
_CHUNK_FRAMES = 1024
# A record may exceed the file's snaplen (tools disagree), but not by 10x; tiny or zero snaplens
# occur in real files (one in the corpus says 1), so that rule never goes below 64 KiB.
_MIN_SNAPLEN_LIMIT = 65_535

_PCAP_MODIFIED = 0xA1B2CD34


_PCAP_HDR = {"<": struct.Struct("<IHHiIII"), ">": struct.Struct(">IHHiIII")}
_PCAP_REC = {"<": struct.Struct("<IIII"), ">": struct.Struct(">IIII")}


class CaptureFileError(OtwatchError):
    """A capture file cannot be opened or read; the message starts with the file name."""


class CaptureFile:
    """An open pcap or pcapng file; iterate it for ``(ts_ns, wire_len, linktype, data)``.

    Attributes: ``path``, ``format`` ("pcap" or "pcapng"), ``linktype`` (of the first
    interface; -1 if a pcapng file defines none), ``snaplen``, ``nanosecond`` (source timestamps
    are finer than 1 µs). After (or during, updated per chunk) iteration: ``packets`` and
    ``bytes`` (sum of captured lengths) count what was yielded, and ``problem`` is ``None`` or
    a one-line description of why reading stopped early (truncated file or corrupt record). A
    record cut short by the end of the file is still yielded with the bytes present, and
    counted. A pcap record is corrupt when its captured length exceeds :data:`MAX_CAPLEN` or
    10x the snaplen (but at least 64 KiB); a pcapng block when its length is below 12, not a
    multiple of 4, over 16 MiB or does not match its trailing copy. Iterating again restarts
    from the beginning (regular files only).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.format = "pcap"
        self.linktype = -1
        self.snaplen = 0
        self.nanosecond = False
        self.packets = 0
        self.bytes = 0
        self.problem: str | None = None
        self._order = "<"
        self._head = b""
        self._started = False
        try:
            self._f: BinaryIO = open(self.path, "rb", buffering=0)  # noqa: SIM115
        except OSError as exc:
            raise self._os_error(exc) from None
        try:
            self._read_header()
        except BaseException:
            self._f.close()
            raise

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CaptureFile {self.path!r} {self.format} linktype={self.linktype}>"

    def __iter__(self) -> Iterator[Frame]:
        head = self._rewind()
        if self.format == "pcap":
            return self._iter_pcap(head)
        return self._iter_pcapng(head)

    def _rewind(self) -> bytes:
        """Start a new pass over the file; returns what was already read of its start."""
        if self._started:
            self._seek0()
        self._started = True
        self.packets = self.bytes = 0
        self.problem = None
        head, self._head = self._head, b""
        return head

    # -- low-level reading -------------------------------------------------------------------

    def _os_error(self, exc: OSError) -> CaptureFileError:
        return CaptureFileError(f"{self.path}: cannot read: {exc.strerror or exc}")

    def _seek0(self) -> None:
        try:
            self._f.seek(0)
        except OSError as exc:
            raise self._os_error(exc) from None
        self._head = b""

    def _read(self, size: int) -> bytes:
        try:
            return self._f.read(size) or b""
        except OSError as exc:
            raise self._os_error(exc) from None

    def _fill(self, buf: bytes, pos: int, need: int) -> bytes:
        """Return ``buf[pos:]`` extended to at least ``need`` bytes (fewer only at EOF)."""
        parts = [buf[pos:]]
        have = len(buf) - pos
        while have < need:
            chunk = self._read(max(_CHUNK, need - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts)

    def _read_start(self) -> bytes:
        """Read the first chunk (at least 24 bytes unless the file is shorter)."""
        return self._fill(b"", 0, 24)

    # -- header validation (at open) ---------------------------------------------------------

    def _read_header(self) -> None:
        head = self._read_start()
        if not head:
            raise CaptureFileError(f"{self.path}: empty file")
        if len(head) < 4:
            raise CaptureFileError(
                f"{self.path}: not a pcap or pcapng file (only {len(head)} bytes)"
            )
        self._head = head
        magic_le = _U32["<"].unpack_from(head)[0]
        magic_be = _U32[">"].unpack_from(head)[0]
        if magic_be == _PCAPNG_SHB:
            self.format = "pcapng"
            self._scan_pcapng_head(head)
            return
        for order, magic in (("<", magic_le), (">", magic_be)):
            if magic in (_PCAP_US, _PCAP_NS):
                self._order = order
                self.nanosecond = magic == _PCAP_NS
                break
            if magic == _PCAP_MODIFIED:
                raise CaptureFileError(
                    f"{self.path}: unsupported pcap variant (modified/Kuznetzov format)"
                )
        else:
            raise CaptureFileError(
                f"{self.path}: not a pcap or pcapng file (starts with 0x{magic_be:08x})"
            )
        if len(head) < 24:
            raise CaptureFileError(f"{self.path}: truncated pcap header ({len(head)} of 24 bytes)")
        _, major, minor, _, _, snaplen, linktype = _PCAP_HDR[self._order].unpack_from(head)
        if major != 2:
            raise CaptureFileError(f"{self.path}: unsupported pcap version {major}.{minor}")
        self.snaplen = snaplen
        self.linktype = linktype & 0xFFFF  # upper bits may carry FCS information

    def _scan_pcapng_head(self, head: bytes) -> None:
        """Validate the first section header and find the first interface (within ``head``)."""
        pos, n = 0, len(head)
        order = "<"
        while pos + 12 <= n:
            try:
                btype, blen, order = _pcapng_block_header(head, pos, order)
                if pos + blen > n:
                    if pos == 0:
                        raise _Corrupt(f"section header says {blen} bytes, {n} present")
                    return
                if btype == _PCAPNG_SHB:
                    _check_shb(head, pos, order)
                elif btype == _IDB:
                    iface = _parse_idb(head, pos, blen, order)
                    self.linktype = iface.linktype
                    self.snaplen = iface.snaplen
                    self.nanosecond = iface.nanosecond
                    return
                elif btype in (_EPB, _SPB, _OPB):
                    return
            except _Corrupt as exc:
                raise CaptureFileError(
                    f"{self.path}: corrupt pcapng block at offset {pos} ({exc})"
                ) from None
            pos += blen
        if pos == 0:
            raise CaptureFileError(f"{self.path}: truncated pcapng section header ({n} bytes)")

    # -- classic pcap ------------------------------------------------------------------------

    def _iter_pcap(self, head: bytes) -> Iterator[Frame]:
        packets = nbytes = 0
        try:
            for frames, _raw in self._pcap_chunks(head, _CHUNK_FRAMES):
                for frame in frames:
                    packets += 1
                    nbytes += len(frame[3])
                    yield frame
        finally:  # what was handed out, also when the caller stops early
            self.packets, self.bytes = packets, nbytes

    def chunks(self, max_frames: int = _CHUNK_FRAMES) -> Iterator[tuple[list[Frame], bytes | None]]:
        """Frames in lists of at most ``max_frames``, each with its records exactly as the
        file holds them (16-byte little-endian headers and data) when the file is classic
        little-endian pcap and every timestamp fraction of the chunk is in range, else None.
        A PCAP ring in the same format copies those bytes instead of packing every record
        again (a record whose fraction overflows is packed again, normalised)."""
        head = self._rewind()
        if self.format == "pcap":
            yield from self._pcap_chunks(head, max_frames)
            return
        frames = self._iter_pcapng(head)
        while chunk := list(islice(frames, max_frames)):
            yield chunk, None

    def _pcap_chunks(
        self, head: bytes, max_frames: int
    ) -> Iterator[tuple[list[Frame], bytes | None]]:
        if not head:
            head = self._read_start()
        unpack = _PCAP_REC[self._order].unpack_from
        raw_ok = self._order == "<"
        lt = self.linktype
        mul = 1 if self.nanosecond else 1000
        frac_lim = _NS // mul
        maxcap = min(MAX_CAPLEN, max(10 * self.snaplen, _MIN_SNAPLEN_LIMIT))
        ns = _NS
        buf, pos, base = head, 24, 0  # base: file offset of buf[0]
        n = len(buf)
        packets = nbytes = 0
        try:
            while True:
                chunk: list[Frame] = []
                append = chunk.append
                first = pos
                raw = raw_ok
                while pos + 16 <= n:
                    sec, frac, caplen, wlen = unpack(buf, pos)
                    start = pos + 16
                    end = start + caplen
                    if end > n or caplen > maxcap:
                        break
                    if frac >= frac_lim:
                        raw = False
                    packets += 1
                    nbytes += caplen
                    append((sec * ns + frac * mul, wlen, lt, buf[start:end]))
                    pos = end
                    if len(chunk) >= max_frames:
                        self.packets, self.bytes = packets, nbytes
                        yield chunk, buf[first:pos] if raw else None
                        chunk = []
                        append = chunk.append
                        first = pos
                        raw = raw_ok
                if chunk:
                    self.packets, self.bytes = packets, nbytes
                    yield chunk, buf[first:pos] if raw else None
                if pos + 16 <= n:
                    caplen = unpack(buf, pos)[2]
                    if caplen > maxcap:
                        self.problem = (
                            f"corrupt record {packets + 1} at byte {base + pos} "
                            f"(captured length {caplen} exceeds {maxcap})"
                        )
                        return
                    need = 16 + caplen
                else:
                    need = 16
                self.packets, self.bytes = packets, nbytes
                base += pos
                buf = self._fill(buf, pos, need)
                pos, n = 0, len(buf)
                if n >= need:
                    continue
                if n == 0:
                    return
                if n < 16:
                    self.problem = (
                        f"truncated inside record {packets + 1} header at byte {base} "
                        f"({n} of 16 bytes present)"
                    )
                    return
                sec, frac, caplen, wlen = unpack(buf, 0)
                packets += 1
                nbytes += n - 16
                self.problem = (
                    f"truncated inside record {packets} at byte {base} "
                    f"(header says {caplen} bytes, {n - 16} present)"
                )
                yield [(sec * ns + frac * mul, wlen, lt, buf[16:])], None
                return
        finally:
            self.packets, self.bytes = packets, nbytes

    # -- pcapng ------------------------------------------------------------------------------

    def _iter_pcapng(self, head: bytes) -> Iterator[Frame]:
        if not head:
            head = self._read_start()
        buf, pos, base = head, 0, 0
        n = len(buf)
        order = "<"
        ifaces: list[_Interface] = []
        epb = _EPB_BODY[order].unpack_from
        packets = nbytes = 0
        last_ts = 0
        try:
            while True:
                if pos + 12 > n:
                    buf, base, pos = self._fill(buf, pos, 12), base + pos, 0
                    n = len(buf)
                    self.packets, self.bytes = packets, nbytes
                    if n < 12:
                        if n:
                            self.problem = (
                                f"truncated inside pcapng block at byte {base} "
                                f"({n} of 12 header bytes present)"
                            )
                        return
                try:
                    btype, blen, order = _pcapng_block_header(buf, pos, order)
                    if pos + blen > n:
                        buf, base, pos = self._fill(buf, pos, blen), base + pos, 0
                        n = len(buf)
                        self.packets, self.bytes = packets, nbytes
                        if n < blen:
                            frame = _partial_packet(btype, buf, order, ifaces, last_ts)
                            if frame is not None:
                                packets += 1
                                nbytes += len(frame[3])
                                yield frame
                            self.problem = (
                                f"truncated inside pcapng block at byte {base} "
                                f"(block says {blen} bytes, {n} present)"
                            )
                            return
                    if _U32[order].unpack_from(buf, pos + blen - 4)[0] != blen:
                        raise _Corrupt("trailing block length does not match")
                    if btype == _EPB:
                        if blen < 32:
                            raise _Corrupt(f"packet block length {blen}")
                        iface_id, hi, lo, caplen, wlen = epb(buf, pos + 8)
                        if caplen > blen - 32 or caplen > MAX_CAPLEN:
                            raise _Corrupt(f"captured length {caplen} exceeds block")
                        if iface_id >= len(ifaces):
                            raise _Corrupt(f"undefined interface {iface_id}")
                        iface = ifaces[iface_id]
                        last_ts = ((((hi << 32) | lo) * iface.mul) >> iface.shift) // iface.div
                        last_ts += iface.offset_ns
                        packets += 1
                        nbytes += caplen
                        yield (last_ts, wlen, iface.linktype, buf[pos + 28 : pos + 28 + caplen])
                    elif btype == _IDB:
                        iface = _parse_idb(buf, pos, blen, order)
                        if self.linktype == -1:
                            self.linktype, self.snaplen = iface.linktype, iface.snaplen
                            self.nanosecond = iface.nanosecond
                        ifaces.append(iface)
                    elif btype == _PCAPNG_SHB:
                        _check_shb(buf, pos, order)
                        ifaces = []
                        epb = _EPB_BODY[order].unpack_from
                    elif btype in (_SPB, _OPB):
                        frame = _packet_block(btype, buf, pos, blen, order, ifaces, last_ts)
                        last_ts = frame[0]
                        packets += 1
                        nbytes += len(frame[3])
                        yield frame
                except (_Corrupt, struct.error) as exc:  # struct.error: safety net only
                    self.problem = f"corrupt pcapng block at byte {base + pos} ({exc})"
                    return
                pos += blen
        finally:
            self.packets, self.bytes = packets, nbytes


def open_capture(path: str | os.PathLike[str]) -> CaptureFile:
    """Open a pcap or pcapng file, validating its header now (raises :class:`CaptureFileError`)."""
    return CaptureFile(path)
