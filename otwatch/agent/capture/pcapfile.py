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

from otwatch.errors import OtwatchError

__all__ = [
    "MAX_CAPLEN",
    "CaptureFile",
    "CaptureFileError",
    "Frame",
    "open_capture",
    "pcap_record",
    "write_pcap_header",
]

Frame = tuple[int, int, int, bytes]
"""``(ts_ns, wire_len, linktype, data)``; ``len(data)`` is the captured length."""

MAX_CAPLEN = 262_144
"""Largest captured length accepted for one frame (libpcap's own limit for Ethernet)."""

_CHUNK = 1 << 20
_CHUNK_FRAMES = 1024
_NS = 1_000_000_000
# A record may exceed the file's snaplen (tools disagree), but not by 10x; tiny or zero snaplens
# occur in real files (one in the corpus says 1), so that rule never goes below 64 KiB.
_MIN_SNAPLEN_LIMIT = 65_535
_MAX_BLOCK = 16 << 20  # pcapng blocks larger than this are treated as corrupt (as Wireshark does)

_PCAP_US = 0xA1B2C3D4
_PCAP_NS = 0xA1B23C4D
_PCAP_MODIFIED = 0xA1B2CD34
_PCAPNG_SHB = 0x0A0D0D0A
_PCAPNG_BOM = 0x1A2B3C4D

_IDB, _OPB, _SPB, _EPB = 1, 2, 3, 6
_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14

_PCAP_HDR = {"<": struct.Struct("<IHHiIII"), ">": struct.Struct(">IHHiIII")}
_PCAP_REC = {"<": struct.Struct("<IIII"), ">": struct.Struct(">IIII")}
_U32 = {"<": struct.Struct("<I"), ">": struct.Struct(">I")}
_BLOCK_HDR = {"<": struct.Struct("<II"), ">": struct.Struct(">II")}
_SHB_VER = {"<": struct.Struct("<HH"), ">": struct.Struct(">HH")}
_IDB_BODY = {"<": struct.Struct("<HHI"), ">": struct.Struct(">HHI")}
_EPB_BODY = {"<": struct.Struct("<IIIII"), ">": struct.Struct(">IIIII")}
_OPB_BODY = {"<": struct.Struct("<HHIIII"), ">": struct.Struct(">HHIIII")}
_OPT_HDR = {"<": struct.Struct("<HH"), ">": struct.Struct(">HH")}
_I64 = {"<": struct.Struct("<q"), ">": struct.Struct(">q")}
_WRITE_HDR = struct.Struct("<IHHiIII")
_WRITE_REC = struct.Struct("<IIII")


class CaptureFileError(OtwatchError):
    """A capture file cannot be opened or read; the message starts with the file name."""


class _Interface:
    """One pcapng interface: link type, snaplen and timestamp scaling to nanoseconds."""

    __slots__ = ("div", "linktype", "mul", "offset_ns", "shift", "snaplen")

    def __init__(self, linktype: int, snaplen: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.mul, self.shift, self.div = 1000, 0, 1  # default resolution: microseconds
        self.offset_ns = 0

    def set_tsresol(self, value: int) -> None:
        exp = value & 0x7F
        if value & 0x80:  # 2^-exp seconds
            self.mul, self.shift, self.div = _NS, exp, 1
        elif exp <= 9:
            self.mul, self.shift, self.div = 10 ** (9 - exp), 0, 1
        else:
            self.mul, self.shift, self.div = 1, 0, 10 ** (exp - 9)

    @property
    def nanosecond(self) -> bool:
        """True when ticks are finer than one microsecond."""
        return (self.shift > 19) or (self.shift == 0 and self.mul < 1000)

    def ts_ns(self, ticks: int) -> int:
        return ((ticks * self.mul) >> self.shift) // self.div + self.offset_ns


class _Corrupt(Exception):
    """Internal: a pcapng block cannot be trusted; carries the one-line reason."""


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
        little-endian pcap, else None. A PCAP ring in the same format copies those bytes
        instead of packing every record again."""
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
                while pos + 16 <= n:
                    sec, frac, caplen, wlen = unpack(buf, pos)
                    start = pos + 16
                    end = start + caplen
                    if end > n or caplen > maxcap:
                        break
                    packets += 1
                    nbytes += caplen
                    append((sec * ns + frac * mul, wlen, lt, buf[start:end]))
                    pos = end
                    if len(chunk) >= max_frames:
                        self.packets, self.bytes = packets, nbytes
                        yield chunk, buf[first:pos] if raw_ok else None
                        chunk = []
                        append = chunk.append
                        first = pos
                if chunk:
                    self.packets, self.bytes = packets, nbytes
                    yield chunk, buf[first:pos] if raw_ok else None
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


def _pcapng_block_header(buf: bytes, pos: int, order: str) -> tuple[int, int, str]:
    """Block type, validated total length and the (possibly new) byte order at ``pos``."""
    btype = _U32[order].unpack_from(buf, pos)[0]
    if btype == _PCAPNG_SHB:
        if _U32["<"].unpack_from(buf, pos + 8)[0] == _PCAPNG_BOM:
            order = "<"
        elif _U32[">"].unpack_from(buf, pos + 8)[0] == _PCAPNG_BOM:
            order = ">"
        else:
            raise _Corrupt("section header has no byte-order magic")
    blen = _U32[order].unpack_from(buf, pos + 4)[0]
    if blen < 12 or blen % 4 or blen > _MAX_BLOCK:
        raise _Corrupt(f"block length {blen}")
    if btype == _PCAPNG_SHB and blen < 28:
        raise _Corrupt(f"section header length {blen}")
    return btype, blen, order


def _check_shb(buf: bytes, pos: int, order: str) -> None:
    major, minor = _SHB_VER[order].unpack_from(buf, pos + 12)
    if major != 1:
        raise _Corrupt(f"unsupported pcapng version {major}.{minor}")


def _parse_idb(buf: bytes, pos: int, blen: int, order: str) -> _Interface:
    if blen < 20:
        raise _Corrupt(f"interface block length {blen}")
    linktype, _, snaplen = _IDB_BODY[order].unpack_from(buf, pos + 8)
    iface = _Interface(linktype, snaplen)
    opt = _OPT_HDR[order].unpack_from
    p, end = pos + 16, pos + blen - 4
    while p + 4 <= end:  # malformed options are ignored, they do not affect packets
        code, olen = opt(buf, p)
        if code == 0 or p + 4 + olen > end:
            break
        if code == _OPT_TSRESOL and olen >= 1:
            iface.set_tsresol(buf[p + 4])
        elif code == _OPT_TSOFFSET and olen == 8:
            iface.offset_ns = _I64[order].unpack_from(buf, p + 4)[0] * _NS
        p += 4 + ((olen + 3) & ~3)
    return iface


def _packet_block(
    btype: int, buf: bytes, pos: int, blen: int, order: str, ifaces: list[_Interface], last: int
) -> Frame:
    """A frame from a simple or obsolete packet block (complete block at ``pos``)."""
    if not ifaces:
        raise _Corrupt("packet before any interface block")
    if btype == _SPB:
        if blen < 16:
            raise _Corrupt(f"simple packet block length {blen}")
        wlen = _U32[order].unpack_from(buf, pos + 8)[0]
        iface = ifaces[0]
        caplen = min(wlen, blen - 16)
        if iface.snaplen:
            caplen = min(caplen, iface.snaplen)
        # A simple packet block has no timestamp: reuse the previous packet's.
        return (last, wlen, iface.linktype, buf[pos + 12 : pos + 12 + caplen])
    if blen < 32:
        raise _Corrupt(f"packet block length {blen}")
    iface_id, _, hi, lo, caplen, wlen = _OPB_BODY[order].unpack_from(buf, pos + 8)
    if caplen > blen - 32 or caplen > MAX_CAPLEN:
        raise _Corrupt(f"captured length {caplen} exceeds block")
    if iface_id >= len(ifaces):
        raise _Corrupt(f"undefined interface {iface_id}")
    iface = ifaces[iface_id]
    return (iface.ts_ns((hi << 32) | lo), wlen, iface.linktype, buf[pos + 28 : pos + 28 + caplen])


def _partial_packet(
    btype: int, buf: bytes, order: str, ifaces: list[_Interface], last: int
) -> Frame | None:
    """The bytes present of a packet block cut short by the end of the file, if any."""
    if btype not in (_EPB, _OPB) or len(buf) < 28 or not ifaces:
        return None
    if btype == _EPB:
        iface_id, hi, lo, caplen, wlen = _EPB_BODY[order].unpack_from(buf, 8)
    else:
        iface_id, _, hi, lo, caplen, wlen = _OPB_BODY[order].unpack_from(buf, 8)
    if iface_id >= len(ifaces):
        return None
    iface = ifaces[iface_id]
    return (iface.ts_ns((hi << 32) | lo), wlen, iface.linktype, buf[28 : 28 + caplen])


def open_capture(path: str | os.PathLike[str]) -> CaptureFile:
    """Open a pcap or pcapng file, validating its header now (raises :class:`CaptureFileError`)."""
    return CaptureFile(path)


def write_pcap_header(
    f: BinaryIO, linktype: int, snaplen: int = MAX_CAPLEN, nanosecond: bool = True
) -> None:
    """Write a little-endian classic pcap file header to ``f``."""
    magic = _PCAP_NS if nanosecond else _PCAP_US
    f.write(_WRITE_HDR.pack(magic, 2, 4, 0, 0, snaplen, linktype))


def pcap_record(ts_ns: int, wire_len: int, data: bytes, nanosecond: bool = True) -> bytes:
    """One little-endian pcap record (header + data) for a file written with that resolution."""
    sec, frac = divmod(ts_ns, _NS)
    if not nanosecond:
        frac //= 1000
    return _WRITE_REC.pack(sec, frac, len(data), wire_len) + data
