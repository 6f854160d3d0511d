"""The network/IT-side detectors, in the order the registry runs them.

Kept as one tuple so the registry gains them with a single entry and benchmarks can measure
them as a group.
"""

from __future__ import annotations

from otwatch.agent.engines.address_scan import AddressScanEngine
from otwatch.agent.engines.arp_scan import ArpScanEngine
from otwatch.agent.engines.arp_spoofing import ArpSpoofingEngine
from otwatch.agent.engines.bandwidth import BandwidthEngine
from otwatch.agent.engines.base import Engine
from otwatch.agent.engines.custom_rules import CustomRuleEngine
from otwatch.agent.engines.dhcp_failure import DhcpFailureEngine
from otwatch.agent.engines.dos import DosEngine
from otwatch.agent.engines.doublepulsar import DoublePulsarEngine
from otwatch.agent.engines.eicar import EicarEngine
from otwatch.agent.engines.http_anomaly import HttpAnomalyEngine
from otwatch.agent.engines.http_errors import HttpErrorEngine
from otwatch.agent.engines.http_policy import HttpPolicyEngine
from otwatch.agent.engines.icmp_flood import IcmpFloodEngine
from otwatch.agent.engines.illegal_ip import IllegalIpEngine
from otwatch.agent.engines.internet import InternetEngine
from otwatch.agent.engines.ioc import IocEngine
from otwatch.agent.engines.login_policy import LoginPolicyEngine
from otwatch.agent.engines.logins import LoginEngine
from otwatch.agent.engines.multicast import MulticastEngine
from otwatch.agent.engines.name_queries import NameQueriesEngine
from otwatch.agent.engines.name_query import NameQueryEngine
from otwatch.agent.engines.periodic import PeriodicEngine
from otwatch.agent.engines.plc_scan import PlcScanEngine
from otwatch.agent.engines.sensor_traffic import SensorTrafficEngine
from otwatch.agent.engines.sessions import SessionsEngine
from otwatch.agent.engines.standard_port import StandardPortEngine
from otwatch.agent.engines.unresponsive import UnresponsiveEngine

__all__ = ["NETWORK_ENGINES"]

NETWORK_ENGINES: tuple[type[Engine], ...] = (
    # anomaly
    AddressScanEngine,
    ArpScanEngine,
    ArpSpoofingEngine,
    IcmpFloodEngine,
    SessionsEngine,
    PlcScanEngine,
    LoginEngine,
    HttpAnomalyEngine,
    StandardPortEngine,
    BandwidthEngine,
    PeriodicEngine,
    # malware
    IocEngine,
    EicarEngine,
    NameQueriesEngine,
    DosEngine,
    DoublePulsarEngine,
    # policy
    InternetEngine,
    LoginPolicyEngine,
    HttpPolicyEngine,
    MulticastEngine,
    NameQueryEngine,
    # operational
    DhcpFailureEngine,
    IllegalIpEngine,
    HttpErrorEngine,
    UnresponsiveEngine,
    SensorTrafficEngine,
    # user-defined rules
    CustomRuleEngine,
)
