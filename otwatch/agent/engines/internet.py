"""Internet Access Detected, Unauthorized Internet Connectivity Detected and External address
within the network communicated with Internet (policy).

- *Internet Access Detected*: an internal device tries to connect to a public address (TCP
  SYN, first UDP datagram of a flow, ICMP echo request).
- *Unauthorized Internet Connectivity Detected*: it worked, the public host answered (SYN-ACK
  or a UDP reply), or an internal device accepted a connection from a public one. Once per
  flow.
- *External address within the network ...*: two public addresses talk on the monitored
  network (a device inside uses a public address and reaches the Internet).

Internal means in ``internal_subnets`` or the configured OT subnets; when
``internal_subnets`` is given only those ranges are internal (list every one), otherwise any
unicast address that is not globally routable (RFC 1918, link local, CGNAT, documentation
ranges) is internal too. Devices that used the Internet while learning are
recorded (baseline kind ``internet_client``) and stay quiet, as do destinations whose DNS
names (learned from A/AAAA answers seen on the wire) match ``fqdn_allowlist`` patterns such
as ``*.windowsupdate.com`` (spec section 2, noise controls).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otwatch.agent.decode.dns import parse_dns
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import (
    EVENT_ICMP,
    EVENT_SYN,
    EVENT_SYNACK,
    EVENT_UDP,
    Engine,
    EngineContext,
)
from otwatch.agent.engines.config import EngineSettingsError, engine_config
from otwatch.agent.engines.counters import remember
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["InternetEngine"]

INTERNET_ACCESS = "internet_access_detected"
CONNECTIVITY = "unauthorized_internet_connectivity_detected"
EXTERNAL_INSIDE = "external_address_within_the_network_communicated_with_internet"
CLIENT_KIND = "internet_client"
OTHER, INTERNAL, PUBLIC = 0, 1, 2


@dataclass(frozen=True)
class Config:
    internal_subnets: tuple[str, ...] = ()
    fqdn_allowlist: tuple[str, ...] = ()
    max_names: int = 100_000
    """Public addresses whose DNS names are remembered for the allowlist."""
    names_per_address: int = 8


def _internal_subnets(c: Config) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    try:
        return tuple(ipaddress.ip_network(s, strict=False) for s in c.internal_subnets)
    except ValueError as exc:
        raise EngineSettingsError(f"settings for detector 'internet': {exc}") from None


class InternetEngine(Engine):
    name = "internet"
    settings_class = Config
    type_ids = frozenset({INTERNET_ACCESS, CONNECTIVITY, EXTERNAL_INSIDE})
    apps = frozenset({EVENT_SYN, EVENT_SYNACK, EVENT_UDP, EVENT_ICMP})

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any]) -> None:
        _internal_subnets(engine_config(Config, settings, cls.name))

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = c = engine_config(Config, ctx.settings.get(self.name), self.name)
        explicit = _internal_subnets(c)
        self._explicit = bool(explicit)
        self._subnets = explicit + ctx.scope.subnets
        self._patterns = tuple(p.lower().rstrip(".") for p in c.fqdn_allowlist)
        self._class: dict[str, int] = {}
        self.names: dict[str, tuple[str, ...]] = {}
        self._allowed: dict[str, bool] = {}
        self._clients = ctx.baseline.kind(CLIENT_KIND)

    # -- address classes ------------------------------------------------------------------

    def kind(self, address: str) -> int:
        cls = self._class.get(address)
        if cls is not None:
            return cls
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            cls = OTHER
        else:
            special = (
                ip.is_multicast or ip.is_unspecified or ip.is_loopback or ip.is_link_local
                or address == "255.255.255.255"
            )  # fmt: skip
            if special:
                cls = INTERNAL if ip.is_link_local and not self._explicit else OTHER
            elif any(ip in net for net in self._subnets):
                cls = INTERNAL
            elif self._explicit:
                cls = PUBLIC
            else:
                cls = PUBLIC if ip.is_global else INTERNAL
        if len(self._class) >= 100_000:
            self._class.clear()
        self._class[address] = cls
        return cls

    def allowed(self, address: str) -> bool:
        """Does a DNS name seen for ``address`` match the FQDN allowlist?"""
        if not self._patterns:
            return False
        cached = self._allowed.get(address)
        if cached is not None:
            return cached
        names = self.names.get(address, ())
        result = any(_matches(name, p) for name in names for p in self._patterns)
        if names:
            remember(self._allowed, address, result, self.config.max_names)
        return result

    # -- packets --------------------------------------------------------------------------

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        src = rec.src_ip
        if src is None:
            return None
        dst_mac = rec.dst_mac
        if dst_mac is not None and dst_mac[0] & 1:  # Ethernet broadcast/multicast: not Internet
            return None
        flags = rec.tcp_flags
        proto = rec.ip_proto
        if flags is not None:
            if not flags & 0x02:
                return None
            if flags & 0x10:
                return self._answer(rec, flow)
            return self._attempt(rec)
        if proto == 17:
            if rec.sport == 53 and self._patterns:
                self._learn_names(rec)
            if flow is None:
                return None
            if flow.packets == 1 and src == flow.client:
                return self._attempt(rec)
            if src == flow.server and not (flow.state and flow.state.get("inet")):
                return self._answer(rec, flow)
            return None
        if rec.icmp_type in (8, 128):
            return self._attempt(rec)
        return None

    def _attempt(self, rec: PacketRecord) -> list[Detection] | None:
        # both set: this engine is routed IP packets only (hence the ignores below; a check
        # would cost on every packet)
        src, dst = rec.src_ip, rec.dst_ip
        kind = self.kind
        if kind(dst) != PUBLIC:  # type: ignore[arg-type]
            return None
        src_kind = kind(src)  # type: ignore[arg-type]
        if src_kind == OTHER:
            return None
        type_id = INTERNET_ACCESS if src_kind == INTERNAL else EXTERNAL_INSIDE
        return self._report(type_id, rec, src, dst)  # type: ignore[arg-type]

    def _answer(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        """A reply: public server answering an internal client, or an internal server
        accepting a public client."""
        # both set: this engine is routed IP packets only (hence the ignores below; a check
        # would cost on every packet)
        src, dst = rec.src_ip, rec.dst_ip
        kind = self.kind
        src_kind, dst_kind = kind(src), kind(dst)  # type: ignore[arg-type]
        if src_kind == PUBLIC and dst_kind == INTERNAL:
            internal, public = dst, src
        elif src_kind == INTERNAL and dst_kind == PUBLIC:
            internal, public = src, dst
        else:
            return None
        if flow is not None:
            if flow.state is None:
                flow.state = {}
            flow.state["inet"] = True
        return self._report(CONNECTIVITY, rec, internal, public)  # type: ignore[arg-type]

    def _report(
        self, type_id: str, rec: PacketRecord, device: str, public: str
    ) -> list[Detection] | None:
        if device in self._clients or self.allowed(public):
            return None
        if self.ctx.learning.active:
            self.ctx.baseline.add(CLIENT_KIND, device, rec.ts_ns, {"example": public})
            return None
        fields = endpoint_fields(rec)
        if rec.src_ip != device:
            fields = {
                "source_address": device,
                "destination_address": public,
                "source_mac": fields["destination_mac"],
                "destination_mac": fields["source_mac"],
                "protocol": fields["protocol"],
            }
        names = self.names.get(public)
        shown = f"{public} ({names[0]})" if names else public
        port = rec.dport if rec.src_ip == device else rec.sport
        text = {
            INTERNET_ACCESS: f"{device} tried to reach Internet address {shown}",
            CONNECTIVITY: f"{device} communicated with Internet address {shown}",
            EXTERNAL_INSIDE: f"{device}, a public address inside the network, contacted {shown}",
        }[type_id]
        return [
            self.detect(
                type_id,
                rec.ts_ns,
                text + (f" on port {port}" if port is not None else ""),
                **fields,
                port=port,
                domain=names[0] if names else None,
            )
        ]

    def _learn_names(self, rec: PacketRecord) -> None:
        msg = parse_dns(rec.payload)
        if msg is None or not msg.is_response or not msg.answers:
            return
        owners = {msg.qname} if msg.qname else set()
        for answer in msg.answers:
            if answer.rtype == 5:
                owners.add(answer.name)
            elif answer.rtype in (1, 28) and answer.value is not None:
                known = self.names.get(answer.value, ())
                merged = tuple(dict.fromkeys((*known, answer.name, *sorted(owners))))
                remember(
                    self.names, answer.value, merged[: self.config.names_per_address],
                    self.config.max_names,
                )  # fmt: skip
                self._allowed.pop(answer.value, None)


def _matches(name: str, pattern: str) -> bool:
    """``*.example.com`` matches any subdomain (not example.com itself); other patterns are
    shell wildcards on the whole name."""
    return fnmatch.fnmatchcase(name, pattern)
