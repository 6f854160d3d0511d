"""pcapng block parsing for :class:`~otwatch.agent.capture.pcapfile.CaptureFile`: block headers,
section and interface descriptions, packet blocks (enhanced, simple, obsolete), and what a
corrupt block raises."""

from __future__ import annotations

import struct

from otwatch.agent.capture.pcapformat import _EPB, _I64, _NS, _OPB, _SPB, _U32, MAX_CAPLEN, Frame

_OPT_TSRESOL, _OPT_TSOFFSET = 9, 14
_MAX_BLOCK = 16 << 20  # pcapng blocks larger than this are treated as corrupt (as Wireshark does)


_PCAPNG_SHB = 0x0A0D0D0A


_PCAPNG_BOM = 0x1A2B3C4D


_BLOCK_HDR = {"<": struct.Struct("<II"), ">": struct.Struct(">II")}


_SHB_VER = {"<": struct.Struct("<HH"), ">": struct.Struct(">HH")}


_IDB_BODY = {"<": struct.Struct("<HHI"), ">": struct.Struct(">HHI")}


_EPB_BODY = {"<": struct.Struct("<IIIII"), ">": struct.Struct(">IIIII")}


_OPB_BODY = {"<": struct.Struct("<HHIIII"), ">": struct.Struct(">HHIIII")}


_OPT_HDR = {"<": struct.Struct("<HH"), ">": struct.Struct(">HH")}


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
