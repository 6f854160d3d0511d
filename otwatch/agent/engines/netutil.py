"""Small helpers the network detectors share: address text, standard alert fields, transport
names and the 'connection attempt' predicate."""

from __future__ import annotations

from typing import Any, overload

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord

__all__ = [
    "TRANSPORTS",
    "endpoint_fields",
    "is_attempt",
    "mac_text",
    "prefix16",
    "transport",
]

TRANSPORTS = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
_SYN_ACK = 0x12
_SYN = 0x02


@overload
def mac_text(mac: bytes | bytearray) -> str: ...
@overload
def mac_text(mac: None) -> None: ...
def mac_text(mac: bytes | bytearray | None) -> str | None:
    return None if mac is None else mac.hex(":")


def transport(rec: PacketRecord) -> str | None:
    proto = rec.ip_proto
    return None if proto is None else TRANSPORTS.get(proto, f"ip-{proto}")


def endpoint_fields(rec: PacketRecord, protocol: str | None = None) -> dict[str, Any]:
    """The standard alert fields of a packet: its sender and receiver, and the protocol."""
    return {
        "source_address": rec.src_ip,
        "destination_address": rec.dst_ip,
        "source_mac": mac_text(rec.src_mac),
        "destination_mac": mac_text(rec.dst_mac),
        "protocol": protocol or transport(rec),
    }


def is_attempt(rec: PacketRecord, flow: Flow | None) -> bool:
    """A new connection attempt: TCP SYN without ACK, the first UDP datagram of a flow from
    its client, or an ICMP echo request."""
    flags = rec.tcp_flags
    if flags is not None:
        return flags & _SYN_ACK == _SYN
    proto = rec.ip_proto
    if proto == 17:
        return flow is not None and flow.packets == 1 and rec.src_ip == flow.client
    return (proto == 1 and rec.icmp_type == 8) or (proto == 58 and rec.icmp_type == 128)


def prefix16(address: str) -> str:
    """The class-B (/16) network of an IPv4 address, or the /64 of an IPv6 one, as text."""
    if ":" not in address:
        head = address.split(".", 2)
        return f"{head[0]}.{head[1]}.0.0/16"
    import ipaddress

    net = ipaddress.ip_network(f"{address}/64", strict=False)
    return str(net)
