"""Open a capture source with the configured method (tpacket, scapy or libpcap)."""

from __future__ import annotations

import sys

from otwatch.agent.capture.config import CaptureConfig
from otwatch.agent.capture.scapy_source import ScapySource
from otwatch.agent.capture.source import CaptureError, CaptureSource
from otwatch.agent.capture.tpacket import TPacketSource

__all__ = ["open_source"]


def open_source(interface: str, config: CaptureConfig) -> CaptureSource:
    """Open ``interface`` with the configured method (raises :class:`CaptureError`)."""
    if config.method == "tpacket":
        if not sys.platform.startswith("linux"):
            raise CaptureError("the tpacket capture method needs Linux; use --method scapy")
        return TPacketSource(interface, config)
    if config.method in ("scapy", "libpcap"):
        if config.fanout_group is not None:
            raise CaptureError("several workers need the tpacket capture method (PACKET_FANOUT)")
        return ScapySource(interface, config, use_pcap=config.method == "libpcap")
    raise CaptureError(f"unknown capture method {config.method!r}")
