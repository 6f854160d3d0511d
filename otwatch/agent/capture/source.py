"""Capture sources behind one interface: batches of ``(ts_ns, wire_len, linktype, data)``.

A source is non-blocking: ``read_batch`` returns what is ready now (maybe nothing) and
``fileno`` can be polled. ``stats`` says what the kernel accepted and dropped for this socket,
and ``drain`` reads until everything the kernel accepted has been delivered, so a clean stop
loses nothing. Implementations: :class:`~otwatch.agent.capture.tpacket.TPacketSource` (Linux
TPACKET_V3 mmap ring, the default) and
:class:`~otwatch.agent.capture.scapy_source.ScapySource` (Scapy's L2 listen socket or its
libpcap binding, the portable fallback); ``otwatch.agent.capture.opener.open_source`` picks
one. Files are read by ``agent replay``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from otwatch.agent.capture.pcapfile import Frame
from otwatch.errors import OtwatchError

__all__ = [
    "CaptureError",
    "CaptureSource",
    "SourceStats",
    "interface_linktype",
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
