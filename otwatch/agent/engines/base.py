"""The engine contract: packets (and their flow) in, detections out.

An engine module holds one detector: a docstring, the catalog type ids it raises, a frozen
``Config`` of documented thresholds, and ``observe``. No database, logging set-up or
suppression: that is the alert manager's job.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from otwatch.agent.decode.flows import Flow, FlowTable
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.baseline import Baseline, LearningClock
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.detection import Detection, DetectionFactory, Repeat

__all__ = [
    "EVENT_ARP",
    "EVENT_DATA",
    "EVENT_FLOW",
    "EVENT_ICMP",
    "EVENT_IP",
    "EVENT_L2",
    "EVENT_SYN",
    "EVENT_SYNACK",
    "EVENT_TAGS",
    "EVENT_UDP",
    "Engine",
    "EngineContext",
    "NetworkScope",
]

# Packet-event tags an engine may list in ``apps`` beside protocol tags, so a detector that
# only counts connection attempts, or only cares who talks to whom, is not called for every
# data packet. A packet may carry several events and a protocol tag; an engine subscribed to
# more than one of them is still called once for the packet.
EVENT_SYN = "@syn"
"""TCP SYN without ACK (a connection attempt)."""
EVENT_SYNACK = "@synack"
"""TCP SYN with ACK (a connection accepted)."""
EVENT_UDP = "@udp"
"""Every UDP datagram."""
EVENT_ICMP = "@icmp"
"""Every ICMP or ICMPv6 message."""
EVENT_ARP = "@arp"
"""Every ARP message."""
EVENT_L2 = "@l2"
"""A frame with no IP or ARP header (PROFINET, GOOSE, LLDP, LLC ...)."""
EVENT_IP = "@ip"
"""An IP packet outside any flow that is not ICMP: other IP protocols (IGMP, GRE, ESP ...),
non-first fragments, transport headers too short to give ports."""
EVENT_FLOW = "@flow"
"""The first TCP/UDP packet of each direction of a flow, and again once a minute of traffic
while the flow lasts (``FlowTable.refresh``): who talks to whom, without the data packets."""
EVENT_DATA = "@data"
"""The first TCP/UDP packet with payload in each direction of a flow (again after a SYN and
after the once-a-minute refresh): how a conversation starts, without the rest of it."""
EVENT_TAGS = (EVENT_SYN, EVENT_SYNACK, EVENT_UDP, EVENT_ICMP, EVENT_ARP, EVENT_L2, EVENT_IP,
              EVENT_FLOW, EVENT_DATA)  # fmt: skip
"""Every event tag; its index is the event's bit in the pipeline's routing key."""


class NetworkScope:
    """Which addresses are plant (OT) devices.

    With no OT subnets configured, any private, link-local or documentation-range unicast
    address counts; internet addresses never do.
    """

    def __init__(self, ot_subnets: Iterable[str] = ()) -> None:
        self.subnets = tuple(ipaddress.ip_network(s, strict=False) for s in ot_subnets)
        self._cache: dict[str, bool] = {}

    def is_ot_device(self, address: str) -> bool:
        cached = self._cache.get(address)
        if cached is not None:
            return cached
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            result = False
        else:
            unicast = not (ip.is_multicast or ip.is_unspecified or ip.is_loopback)
            if isinstance(ip, ipaddress.IPv4Address):
                unicast = unicast and address != "255.255.255.255" and not address.endswith(".255")
            if self.subnets:
                result = unicast and any(ip in net for net in self.subnets)
            else:
                result = unicast and (ip.is_private or ip.is_link_local)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[address] = result
        return result


@dataclass
class EngineContext:
    """What every engine shares: detection builder, baseline, learning clock, settings."""

    factory: DetectionFactory
    baseline: Baseline
    learning: LearningClock
    scope: NetworkScope = field(default_factory=NetworkScope)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-engine threshold overrides, keyed by engine name."""
    interface: str | None = None
    """Capture interface of the packet being processed (None for offline replay)."""
    interface_last_ns: dict[str | None, int] = field(default_factory=dict)
    """Time of the latest packet per capture interface (kept by the pipeline)."""
    flows: FlowTable | None = None
    """The pipeline's flow table, for detectors that sum flows on ticks instead of per packet."""
    identified: Callable[[str, PacketRecord, bytes], None] | None = None
    """Where an engine that already parses a protocol hands a packet carrying the sender's
    identification (``(protocol, packet, payload)``): the device inventory, so it need not
    look at every packet of that protocol itself."""


class Engine:
    """Base class of detectors. Subclasses set ``name``, ``type_ids`` and ``apps``."""

    name: ClassVar[str]
    type_ids: ClassVar[frozenset[str]]
    apps: frozenset[str] | None = None
    """Application protocol tags (and ``EVENT_*`` tags) this engine inspects; None means every
    packet. An instance may set an empty set in ``__init__`` to be never called."""
    settings_class: ClassVar[type | None] = None
    """The engine's frozen settings dataclass (its ``[engines.<name>]`` thresholds), if any:
    the configuration check describes and validates the table with it."""

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        """Raise ``EngineSettingsError`` (or ``ValueError``) for settings the engine would
        refuse, without starting it (``otwatch config check``)."""
        if cls.settings_class is not None:
            engine_config(cls.settings_class, settings, cls.name)

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.detect = ctx.factory.make

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | Repeat | None:
        """The detections this packet raises (a ``Repeat`` when they are earlier ones again,
        but for the time), or None."""
        raise NotImplementedError

    def tick(self, now_ns: int) -> list[Detection] | None:
        """Optional: called about once per second of traffic or wall time, for detectors of
        absence (timeouts, silence). Only engines that override it are called."""
        return None

    def restart_segment(self) -> None:
        """Optional: a new capture file or session begins; forget time gaps before it."""
