"""Settings of live capture, the rolling PCAP ring and per-alert evidence.

Plain frozen dataclasses: the CLI (and later a config file) fills them, the capture, ring and
evidence code reads them. Sizes given as text (``64MiB``, ``2G``) go through :func:`parse_size`.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from otwatch.errors import OtwatchError

__all__ = [
    "CAPTURE_METHODS",
    "DIRECTIONS",
    "CaptureConfig",
    "EvidenceConfig",
    "RingConfig",
    "SizeError",
    "default_method",
    "evidence_directory",
    "parse_size",
    "ring_directory",
]

CAPTURE_METHODS = ("tpacket", "scapy", "libpcap")
"""``tpacket``: Linux TPACKET_V3 mmap ring; ``scapy``: Scapy's L2 listen socket (portable);
``libpcap``: Scapy's libpcap binding. Offline files go through ``agent replay``."""

DIRECTIONS = ("inout", "in")
"""Which frames of the interface to capture: both directions (as tcpdump) or only received
ones (frames the sensor host sends itself are skipped)."""

MiB = 1 << 20
GiB = 1 << 30
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


class SizeError(OtwatchError):
    """A size given on the command line or in config could not be read."""


def parse_size(text: str) -> int:
    """Parse ``4096``, ``64k``, ``64KiB``, ``1.5G``, ``2GB`` into bytes (powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise SizeError(f"invalid size {text!r}; use a number and an optional unit K, M, G, T")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * (1024 ** _POWERS[unit]))


def default_method() -> str:
    return "tpacket" if sys.platform.startswith("linux") else "scapy"


@dataclass(frozen=True)
class CaptureConfig:
    """How to open the capture interfaces."""

    interfaces: tuple[str, ...]
    method: str = field(default_factory=default_method)
    bpf: str | None = None
    """A tcpdump-style capture filter, compiled by libpcap and attached to the socket."""
    promisc: bool = True
    direction: str = "inout"
    block_size: int = 1 * MiB
    """TPACKET_V3 block size (a multiple of the page size)."""
    block_count: int = 128
    """TPACKET_V3 blocks; block_size × block_count is the kernel buffer per socket."""
    block_timeout_ms: int = 50
    """A partly filled block is handed over after this long (bounds latency)."""
    fanout_group: int | None = None
    """PACKET_FANOUT group id shared by the worker processes (None: no fanout)."""


@dataclass(frozen=True)
class RingConfig:
    """The rolling PCAP ring: segment rotation and the disk budget."""

    directory: Path
    segment_bytes: int = 64 * MiB
    segment_seconds: float = 300.0
    """Rotate a segment after this much traffic time even when it is small."""
    max_bytes: int | None = 4 * GiB
    max_percent: float | None = 20.0
    """Budget as a share of the ring's filesystem; the smaller of the two budgets applies."""
    buffer_bytes: int = 1 * MiB
    """Frames are written in chunks of about this size (and at least every tick)."""


@dataclass(frozen=True)
class EvidenceConfig:
    """Per-alert evidence files cut from the ring."""

    directory: Path
    before_s: float = 30.0
    after_s: float = 30.0
    max_bytes: int = 1 * GiB
    """Budget for all evidence files together (oldest evidence deleted first)."""
    alert_max_bytes: int = 32 * MiB
    """Budget for one alert's file (its oldest packets go first)."""
    pass_alerts: int = 1024
    """Alerts cut per pass over the ring: bounds one pass's time and memory; more due
    alerts wait for the next pass (high severity first), counted as the backlog."""


def ring_directory(data_dir: Path) -> Path:
    return Path(data_dir) / "pcap" / "ring"


def evidence_directory(data_dir: Path) -> Path:
    return Path(data_dir) / "pcap" / "evidence"
