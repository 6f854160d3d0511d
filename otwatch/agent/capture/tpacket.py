"""Linux TPACKET_V3 capture: the kernel fills a memory-mapped ring of blocks, we read it.

The socket is configured before it is bound (version, ring, filter, direction), so no frame
reaches the ring unfiltered; promiscuous mode is a packet-socket membership (dropped by the
kernel when the socket closes), and with several workers each socket joins a PACKET_FANOUT
group that hashes by flow (the kernel's flow hash is symmetric, so both directions of a
connection meet in one worker). Reading a block costs one ``struct`` unpack and one slice per
frame, about 1 µs in CPython; a block is handed back to the kernel as soon as it is copied.

Timestamps are the kernel's, in nanoseconds. VLAN tags stripped by the NIC or the kernel are
put back into the frame (as libpcap does), so the ring holds what was on the wire.
"""

from __future__ import annotations

import mmap
import socket
import struct

from otwatch.agent.capture.bpf import attach_filter, compile_filter
from otwatch.agent.capture.config import CaptureConfig
from otwatch.agent.capture.pcapfile import Frame
from otwatch.agent.capture.source import (
    CaptureError,
    CaptureSource,
    SourceStats,
    interface_linktype,
)

__all__ = ["TPacketSource", "ignore_outgoing", "read_packet_statistics"]

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
TPACKET_V3 = 2
PACKET_MR_PROMISC = 1
PACKET_FANOUT_HASH = 0
ETH_P_ALL = 0x0003

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
ETH_P_8021Q = 0x8100

_FRAME_SIZE = 2048  # TPACKET_V3 ignores frame slots, but the kernel checks the arithmetic
_PAGE = mmap.PAGESIZE
_NS = 1_000_000_000

_u32 = struct.Struct("<I").unpack_from
_u32_set = struct.Struct("<I").pack_into
_block_hdr = struct.Struct("<III").unpack_from  # block_status, num_pkts, offset_to_first_pkt
# tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac
_pkt_hdr = struct.Struct("<IIIIIIH").unpack_from
_vlan = struct.Struct("<IH").unpack_from  # hv1.tp_vlan_tci (offset 32), tp_vlan_tpid (36)
_tag = struct.Struct("!HH").pack
_stats_v3 = struct.Struct("III")
_stats_v2 = struct.Struct("II")


def read_packet_statistics(sock: socket.socket, *, v3: bool = True) -> tuple[int, int, int]:
    """``(packets, drops, freezes)`` since the last call (the kernel resets them on read).

    ``packets`` counts every frame the kernel handled for the socket, dropped ones included.
    """
    fmt = _stats_v3 if v3 else _stats_v2
    raw = sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, fmt.size)
    values = fmt.unpack(raw)
    return (values[0], values[1], values[2] if v3 else 0)


def ignore_outgoing(sock: socket.socket) -> None:
    """Skip frames this host sends on the interface (Linux 4.20+)."""
    try:
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError as exc:
        raise CaptureError(
            f"this kernel cannot skip outgoing frames (PACKET_IGNORE_OUTGOING): {exc.strerror}"
        ) from None


class TPacketSource(CaptureSource):
    """One TPACKET_V3 socket on one interface."""

    nanosecond = True

    def __init__(self, interface: str, config: CaptureConfig) -> None:
        self.name = interface
        self.linktype = interface_linktype(interface)
        try:
            ifindex = socket.if_nametoindex(interface)
        except OSError:
            raise CaptureError(f"no such network interface: {interface}") from None
        block_size = config.block_size
        if block_size < _PAGE or block_size % _PAGE or block_size & (block_size - 1):
            raise CaptureError(
                f"block size {block_size} must be a power of two and at least {_PAGE} bytes"
            )
        if config.block_count < 2:
            raise CaptureError("at least 2 ring blocks are needed")
        self._block_size = block_size
        self._blocks = config.block_count
        self._next = 0
        self._stats = SourceStats(interface)
        program = compile_filter(config.bpf, self.linktype) if config.bpf else None
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise CaptureError(
                f"no permission to capture on {interface} (needs root or CAP_NET_RAW)"
            ) from None
        self._sock = sock
        try:
            self._setup(sock, interface, ifindex, config, program)
        except OSError as exc:
            sock.close()
            raise CaptureError(f"cannot capture on {interface}: {exc.strerror or exc}") from None
        except BaseException:
            sock.close()
            raise

    def _setup(
        self,
        sock: socket.socket,
        interface: str,
        ifindex: int,
        config: CaptureConfig,
        program: list | None,
    ) -> None:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        if program is not None:
            attach_filter(sock, program)
        if config.direction == "in":
            ignore_outgoing(sock)
        frames_per_block = self._block_size // _FRAME_SIZE
        req = struct.pack(
            "7I",
            self._block_size,
            self._blocks,
            _FRAME_SIZE,
            frames_per_block * self._blocks,
            max(1, config.block_timeout_ms),
            0,
            0,
        )
        try:
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        except OSError as exc:
            total = self._block_size * self._blocks
            raise CaptureError(
                f"cannot set up a {total >> 20} MiB capture ring on {interface}: "
                f"{exc.strerror} (try a smaller --block-size/--block-count)"
            ) from None
        self._mm = mmap.mmap(
            sock.fileno(),
            self._block_size * self._blocks,
            mmap.MAP_SHARED,
            mmap.PROT_READ | mmap.PROT_WRITE,
        )
        sock.bind((interface, ETH_P_ALL))
        if config.promisc:
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        if config.fanout_group is not None:
            sock.setsockopt(
                SOL_PACKET,
                PACKET_FANOUT,
                (config.fanout_group & 0xFFFF) | (PACKET_FANOUT_HASH << 16),
            )

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_batch(self, limit: int = 65_536) -> list[Frame]:
        """Copy out every ready block (up to about ``limit`` frames) and release it."""
        mm = self._mm
        bsize, nblocks = self._block_size, self._blocks
        block = self._next
        lt = self.linktype
        ns = _NS
        frames: list[Frame] = []
        append = frames.append
        while len(frames) < limit:
            off = block * bsize
            status, count, first = _block_hdr(mm, off + 8)
            if not status & TP_STATUS_USER:
                break
            pos = off + first
            for _ in range(count):
                nxt, sec, nsec, snap, wlen, st, mac = _pkt_hdr(mm, pos)
                start = pos + mac
                data = mm[start : start + snap]
                if st & TP_STATUS_VLAN_VALID:
                    tci, tpid = _vlan(mm, pos + 32)
                    if not st & TP_STATUS_VLAN_TPID_VALID or not tpid:
                        tpid = ETH_P_8021Q
                    data = data[:12] + _tag(tpid, tci & 0xFFFF) + data[12:]
                    wlen += 4
                append((sec * ns + nsec, wlen, lt, data))
                pos += nxt
            _u32_set(mm, off + 8, TP_STATUS_KERNEL)
            block = block + 1 if block + 1 < nblocks else 0
        self._next = block
        self._stats.received += len(frames)
        return frames

    def stats(self) -> SourceStats:
        packets, drops, freezes = read_packet_statistics(self._sock)
        st = self._stats
        st.kernel_packets += packets
        st.kernel_drops += drops
        st.kernel_freezes += freezes
        return st

    def close(self) -> None:
        mm = getattr(self, "_mm", None)
        if mm is not None:
            mm.close()
            del self._mm
        self._sock.close()
