"""Unauthorized Name Query (policy): a device asks a DNS server it did not ask during
learning.

DNS queries (UDP or TCP to port 53) are keyed by ``client>server``; while learning the pairs
are recorded (baseline kind ``dns_server``), afterwards a new pair raises at most one
detection per ``report_interval_s``, naming the first query seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from otwatch.agent.decode.dns import parse_dns, parse_dns_tcp
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import PacketRecord
from otwatch.agent.engines.base import Engine, EngineContext
from otwatch.agent.engines.config import engine_config
from otwatch.agent.engines.counters import remember
from otwatch.agent.engines.detection import Detection
from otwatch.agent.engines.netutil import endpoint_fields

__all__ = ["NameQueryEngine"]

UNAUTHORIZED_NAME_QUERY = "unauthorized_name_query"
DNS_SERVER_KIND = "dns_server"


@dataclass(frozen=True)
class Config:
    report_interval_s: float = 60.0
    max_tracked: int = 10_000


class NameQueryEngine(Engine):
    name = "name_query"
    settings_class = Config
    type_ids = frozenset({UNAUTHORIZED_NAME_QUERY})
    apps = frozenset({"dns"})

    def __init__(self, ctx: EngineContext) -> None:
        super().__init__(ctx)
        self.config = engine_config(Config, ctx.settings.get(self.name), self.name)
        self._interval_ns = int(self.config.report_interval_s * 1e9)
        self._known = ctx.baseline.kind(DNS_SERVER_KIND)
        self._reported: dict[str, int] = {}

    def observe(self, rec: PacketRecord, flow: Flow | None) -> list[Detection] | None:
        if rec.dport != 53 or not rec.payload:
            return None
        key = f"{rec.src_ip}>{rec.dst_ip}"
        if key in self._known:
            return None
        msg = parse_dns_tcp(rec.payload) if rec.ip_proto == 6 else parse_dns(rec.payload)
        if msg is None or msg.is_response or msg.opcode != 0 or msg.qname is None:
            return None
        ts = rec.ts_ns
        if self.ctx.learning.active:
            self.ctx.baseline.add(DNS_SERVER_KIND, key, ts, {"example": msg.qname})
            return None
        last = self._reported.get(key)
        if last is not None and ts - last < self._interval_ns:
            return None
        remember(self._reported, key, ts, self.config.max_tracked)
        return [
            self.detect(
                UNAUTHORIZED_NAME_QUERY,
                ts,
                f"{rec.src_ip} asked DNS server {rec.dst_ip} for {msg.qname} "
                f"({msg.qtype_name}); it did not use this server during learning",
                **endpoint_fields(rec, "dns"),
                domain=msg.qname,
                qtype=msg.qtype_name,
            )
        ]
