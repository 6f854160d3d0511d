"""Settings of live capture, the rolling PCAP ring and per-alert evidence.

Plain frozen dataclasses: the CLI (and later a config file) fills them, the capture, ring and
evidence code reads them. Sizes given as text (``64MiB``, ``2G``) go through :func:`parse_size`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from otwatch.timeutil import NS_PER_S, parse_duration_ns
from otwatch.units import SizeError, parse_size

if TYPE_CHECKING:
    from otwatch.config import CaptureSection, PcapSection

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

    @classmethod
    def from_section(cls, section: CaptureSection) -> CaptureConfig:
        """The configuration file's ``[capture]``."""
        return cls(
            interfaces=tuple(section.interfaces),
            method=section.method or default_method(),
            bpf=section.bpf or None,
            promisc=section.promisc,
            direction=section.direction,
        )


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
    index: bool = True
    """Write an index beside each closed segment (:mod:`~otwatch.agent.capture.ring_index`)."""

    @classmethod
    def from_section(cls, pcap: PcapSection, data_dir: Path) -> RingConfig:
        """The configuration file's ``[pcap]`` ring settings, for the sensor in ``data_dir``."""
        return cls(
            directory=ring_directory(data_dir),
            segment_bytes=parse_size(pcap.segment_size),
            segment_seconds=parse_duration_ns(pcap.segment_duration) / NS_PER_S,
            max_bytes=parse_size(pcap.ring_budget),
            max_percent=pcap.ring_budget_percent,
        )


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

    @classmethod
    def from_section(cls, pcap: PcapSection, data_dir: Path) -> EvidenceConfig:
        """The configuration file's ``[pcap]`` evidence settings."""
        return cls(
            directory=evidence_directory(data_dir),
            before_s=parse_duration_ns(pcap.evidence_before) / NS_PER_S,
            after_s=parse_duration_ns(pcap.evidence_after) / NS_PER_S,
            max_bytes=parse_size(pcap.evidence_budget),
            alert_max_bytes=parse_size(pcap.evidence_alert_budget),
        )


def ring_directory(data_dir: Path) -> Path:
    return Path(data_dir) / "pcap" / "ring"


def evidence_directory(data_dir: Path) -> Path:
    return Path(data_dir) / "pcap" / "evidence"
