"""Illegal Connection Attempt on Port 0 (protocol violation): TCP or UDP sent to port 0.

Port 0 is reserved; traffic to it is a fingerprinting trick or a broken stack.
"""

from __future__ import annotations

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import EVENT_SYN, EVENT_UDP, Engine
from otwatch.agent.engines.detection import Detection

__all__ = ["PortZeroEngine"]

PORT_ZERO = "illegal_connection_attempt_on_port_0"


class PortZeroEngine(Engine):
    name = "port_zero"
    type_ids = frozenset({PORT_ZERO})
    apps = frozenset({EVENT_SYN, EVENT_UDP})  # connection attempts only

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.dport != 0:
            return None
        proto = "tcp" if rec.ip_proto == 6 else "udp"
        return [
            self.detect(
                PORT_ZERO,
                rec.ts_ns,
                f"{rec.src_ip} sent {proto} to port 0 of {rec.dst_ip} (from port {rec.sport})",
                source_address=rec.src_ip,
                destination_address=rec.dst_ip,
                source_mac=rec.src_mac.hex(":") if rec.src_mac else None,
                destination_mac=rec.dst_mac.hex(":") if rec.dst_mac else None,
                protocol=proto,
            )
        ]
