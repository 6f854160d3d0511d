"""Capture sources behind one interface: batches of ``(ts_ns, wire_len, linktype, data)``.

A source is non-blocking: ``read_batch`` returns what is ready now (maybe nothing) and
``fileno`` can be polled. ``stats`` says what the kernel accepted and dropped for this socket,
and ``drain`` reads until everything the kernel accepted has been delivered, so a clean stop
loses nothing. Implementations: :class:`~otwatch.agent.capture.tpacket.TPacketSource` (Linux
TPACKET_V3 mmap ring, the default) and :class:`ScapySource` (Scapy's L2 listen socket or
its libpcap binding, the portable fallback). Files are read by ``agent replay``.
"""

from __future__ import annotations

import errno
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

from otwatch.agent.capture.config import CaptureConfig
from otwatch.agent.capture.pcapfile import Frame
from otwatch.errors import OtwatchError

__all__ = [
    "CaptureError",
    "CaptureSource",
    "ScapySource",
    "SourceStats",
    "interface_linktype",
    "open_source",
]

NS = 1_000_000_000
ARPHRD_TO_LINKTYPE = {1: 1, 772: 1, 65534: 101}
"""Ethernet and loopback deliver Ethernet frames; ``none`` (tun) delivers raw IP."""


class CaptureError(OtwatchError):
    """An interface cannot be opened or read for capture."""


@dataclass(slots=True)
class SourceStats:
    interface: str
    received: int = 0
    """Frames this process read from the socket."""
    kernel_packets: int = 0
    """Frames the kernel handled for this socket (after the filter), dropped ones included."""
    kernel_drops: int = 0
    """Frames the kernel dropped because the socket's buffer was full."""
    kernel_freezes: int = 0

    def as_dict(self) -> dict[str, int | str]:
        return {
            "interface": self.interface,
            "received": self.received,
            "kernel_packets": self.kernel_packets,
            "kernel_drops": self.kernel_drops,
            "kernel_freezes": self.kernel_freezes,
        }


def interface_linktype(interface: str) -> int:
    """The pcap link type frames of ``interface`` carry (Linux; Ethernet elsewhere)."""
    try:
        with open(f"/sys/class/net/{interface}/type") as f:
            arphrd = int(f.read().strip())
    except FileNotFoundError:
        raise CaptureError(f"no such network interface: {interface}") from None
    except (OSError, ValueError):
        return 1
    try:
        return ARPHRD_TO_LINKTYPE[arphrd]
    except KeyError:
        raise CaptureError(
            f"interface {interface} has hardware type {arphrd}, which otwatch cannot capture "
            "(Ethernet, loopback and tun interfaces are supported)"
        ) from None


class CaptureSource:
    """Base class: one capture socket on one interface."""

    name: str
    linktype: int = 1
    nanosecond: bool = False

    def fileno(self) -> int:
        raise NotImplementedError

    def read_batch(self) -> list[Frame]:
        """Frames ready now, without blocking (an empty list when there are none)."""
        raise NotImplementedError

    def stats(self) -> SourceStats:
        """Cumulative counters since the source was opened."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def drain(self, timeout_s: float = 5.0) -> Iterator[list[Frame]]:
        """Yield batches until the kernel has nothing more that it accepted, or timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            batch = self.read_batch()
            if batch:
                yield batch
                continue
            st = self.stats()
            if st.received >= st.kernel_packets - st.kernel_drops:
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.005)

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
            if use_pcap:
                conf.use_pcap = True
                from scapy.arch.libpcap import L2pcapListenSocket as listen  # type: ignore
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
                from otwatch.agent.capture.tpacket import ignore_outgoing

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
            from otwatch.agent.capture.tpacket import read_packet_statistics

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


def open_source(interface: str, config: CaptureConfig) -> CaptureSource:
    """Open ``interface`` with the configured method (raises :class:`CaptureError`)."""
    if config.method == "tpacket":
        if not sys.platform.startswith("linux"):
            raise CaptureError("the tpacket capture method needs Linux; use --method scapy")
        from otwatch.agent.capture.tpacket import TPacketSource

        return TPacketSource(interface, config)
    if config.method in ("scapy", "libpcap"):
        if config.fanout_group is not None:
            raise CaptureError("several workers need the tpacket capture method (PACKET_FANOUT)")
        return ScapySource(interface, config, use_pcap=config.method == "libpcap")
    raise CaptureError(f"unknown capture method {config.method!r}")
