"""Capture through Scapy's L2 listen socket or its libpcap binding: the portable fallback
to ``tpacket`` (one system call per frame, microsecond timestamps)."""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Callable
from typing import Any

from otwatch.agent.capture.config import CaptureConfig
from otwatch.agent.capture.pcapfile import Frame
from otwatch.agent.capture.source import NS, CaptureError, CaptureSource, SourceStats
from otwatch.agent.capture.tpacket import ignore_outgoing, read_packet_statistics

__all__ = ["ScapySource"]


class ScapySource(CaptureSource):
    """Scapy's L2 listen socket (or, with ``libpcap``, Scapy's libpcap socket).

    Portable but slower (one system call per frame) and with microsecond timestamps; wire
    length is the captured length. Kernel drop counters are read on Linux only.
    """

    def __init__(self, interface: str, config: CaptureConfig, *, use_pcap: bool = False) -> None:
        from scapy.config import conf
        from scapy.error import Scapy_Exception

        self.name = interface
        self._stats = SourceStats(interface)
        try:
            listen: Callable[..., Any]
            if use_pcap:
                conf.use_pcap = True
                from scapy.arch.libpcap import L2pcapListenSocket as listen
            else:
                listen = conf.L2listen
            self._sock = listen(iface=interface, promisc=config.promisc, filter=config.bpf)
        except (OSError, Scapy_Exception, ImportError, ValueError) as exc:
            raise CaptureError(f"cannot capture on {interface}: {exc}") from None
        self.linktype = _linktype_of(self._sock)
        self._pcap = hasattr(self._sock, "pcap_fd")
        self._linux_packet = False
        if self._pcap:
            self._sock.pcap_fd.setnonblock(True)
        else:
            ins = self._sock.ins
            ins.setblocking(False)
            self._linux_packet = getattr(ins, "family", None) == getattr(socket, "AF_PACKET", -1)
            if self._linux_packet and config.direction == "in":
                ignore_outgoing(ins)

    def fileno(self) -> int:
        return self._sock.fileno()

    def read_batch(self, limit: int = 4096) -> list[Frame]:
        frames: list[Frame] = []
        recv = self._sock.recv_raw
        lt = self.linktype
        for _ in range(limit):
            try:
                _cls, data, ts = recv()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    break
                raise CaptureError(f"capture on {self.name} failed: {exc.strerror}") from None
            if data is None:
                if self._pcap:
                    break
                continue  # an outgoing frame Scapy chose to skip
            ts_ns = int(ts * NS) if ts is not None else time.time_ns()
            frames.append((ts_ns, len(data), lt, data))
        self._stats.received += len(frames)
        return frames

    def stats(self) -> SourceStats:
        if self._linux_packet:
            packets, drops, _ = read_packet_statistics(self._sock.ins, v3=False)
            self._stats.kernel_packets += packets
            self._stats.kernel_drops += drops
        else:
            self._stats.kernel_packets = self._stats.received
        return self._stats

    def close(self) -> None:
        self._sock.close()


def _linktype_of(sock: object) -> int:
    from scapy.config import conf

    ll = getattr(sock, "LL", None)
    for num, layer in conf.l2types.num2layer.items():
        if layer is ll:
            return int(num)
    return 1
