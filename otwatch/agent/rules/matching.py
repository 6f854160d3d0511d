"""Matching custom rules against decoded packets (validation is in :mod:`.custom`).

A packet becomes one or more dicts of field values (one per application PDU: a Modbus
segment may hold several); a compiled rule matches when its protocol, day/time window,
devices and every condition hold for one of them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from otwatch.agent.decode.dns import parse_dns, parse_dns_tcp
from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import L3_ARP, PacketRecord
from otwatch.agent.decode.httpmsg import parse_http
from otwatch.agent.engines.netutil import mac_text, transport
from otwatch.agent.rules.custom import (
    DAYS,
    FIELDS,
    MAC_PATTERN,
    TEMPLATE_VARIABLE,
    Condition,
    CustomRuleSpec,
)

__all__ = ["CompiledRule", "packet_contexts", "render_message"]


def _base(rec: PacketRecord, flow: Flow | None) -> dict[str, Any]:
    return {
        "src_ip": rec.src_ip or rec.arp_sender_ip,
        "dst_ip": rec.dst_ip or rec.arp_target_ip,
        "src_mac": mac_text(rec.src_mac),
        "dst_mac": mac_text(rec.dst_mac),
        "src_port": rec.sport,
        "dst_port": rec.dport,
        "transport": "arp" if rec.l3 == L3_ARP else transport(rec),
        "protocol": flow.app if flow is not None and flow.app else None,
        "vlan": rec.vlan,
        "ttl": rec.ttl,
        "length": rec.wire_len,
        "payload_length": len(rec.payload),
        "tcp_flags": rec.tcp_flags,
        "icmp_type": rec.icmp_type,
        "payload": rec.payload,
    }


def _app_contexts(group: str, rec: PacketRecord) -> list[dict[str, Any]]:
    payload = rec.payload
    if group == "arp":
        if rec.l3 != L3_ARP:
            return []
        return [
            {"arp.op": rec.arp_op, "arp.sender_ip": rec.arp_sender_ip,
             "arp.target_ip": rec.arp_target_ip}
        ]  # fmt: skip
    if group == "modbus":
        from otwatch.agent.decode.modbus import iter_mbap

        if 502 not in (rec.sport, rec.dport):
            return []
        return [
            {"modbus.function_code": fc & 0x7F, "modbus.unit_id": unit}
            for _off, _length, unit, fc in iter_mbap(payload)
        ]
    if group == "dns":
        if 53 not in (rec.sport, rec.dport) and 5353 not in (rec.sport, rec.dport):
            return []
        msg = parse_dns_tcp(payload) if rec.ip_proto == 6 else parse_dns(payload)
        if msg is None:
            return []
        return [{"dns.query": msg.qname, "dns.qtype": msg.qtype, "dns.rcode": msg.rcode}]
    if group == "http":
        head = parse_http(payload) if payload else None
        if head is None:
            return []
        return [
            {
                "http.method": head.method,
                "http.path": head.path,
                "http.host": head.header("host"),
                "http.user_agent": head.header("user-agent"),
                "http.status": head.status,
            }
        ]
    return []


def packet_contexts(
    rec: PacketRecord, flow: Flow | None, groups: Iterable[str]
) -> list[dict[str, Any]]:
    """The packet's field values: one dict per application PDU (a Modbus segment may hold
    several), each with the base fields; empty when a needed decoder finds nothing."""
    base = _base(rec, flow)
    contexts = [base]
    for group in groups:
        if group == "base":
            continue
        apps = _app_contexts(group, rec)
        if not apps:
            return []
        contexts = [{**ctx, **app} for ctx in contexts for app in apps]
    return contexts


def _matcher(cond: Condition) -> Callable[[Mapping[str, Any]], bool]:
    name, op, value = cond.field, cond.op, cond.value
    kind = FIELDS[name][0]

    if kind == "ip":

        def contains(v: Any, net: Any) -> bool:
            try:
                return ipaddress.ip_address(v) in net
            except ValueError:
                return False

        if op == "==":
            return lambda c: c.get(name) is not None and contains(c[name], value)
        if op == "!=":
            return lambda c: c.get(name) is not None and not contains(c[name], value)
        if op == "in":
            return lambda c: c.get(name) is not None and any(contains(c[name], n) for n in value)
        return lambda c: c.get(name) is not None and not any(contains(c[name], n) for n in value)
    ops: dict[str, Callable[[Any], bool]] = {
        "==": lambda v: v == value,
        "!=": lambda v: v != value,
        "<": lambda v: v < value,
        "<=": lambda v: v <= value,
        ">": lambda v: v > value,
        ">=": lambda v: v >= value,
        "in": lambda v: v in value,
        "not_in": lambda v: v not in value,
        "contains": lambda v: value in v,
        "not_contains": lambda v: value not in v,
        "startswith": lambda v: v.startswith(value),
        "endswith": lambda v: v.endswith(value),
        "matches": lambda v: value.search(v) is not None,
    }
    test = ops[op]

    def check(c: Mapping[str, Any]) -> bool:
        v = c.get(name)
        return v is not None and test(v)

    return check


def _device_test(entries: tuple[str, ...], ip_key: str, mac_key: str):
    if not entries:
        return None
    macs = frozenset(e for e in entries if MAC_PATTERN.match(e))
    nets = tuple(ipaddress.ip_network(e) for e in entries if not MAC_PATTERN.match(e))

    def test(c: Mapping[str, Any]) -> bool:
        if c.get(mac_key) in macs:
            return True
        ip = c.get(ip_key)
        if ip is None or not nets:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in net for net in nets)

    return test


class CompiledRule:
    """A validated rule ready to test packets."""

    def __init__(self, spec: CustomRuleSpec) -> None:
        self.spec = spec
        self.groups = tuple(sorted({FIELDS[c.field][1] for c in spec.conditions} - {"base"}))
        tests = [_matcher(c) for c in spec.conditions]
        for entries, ip_key, mac_key in (
            (spec.sources, "src_ip", "src_mac"),
            (spec.destinations, "dst_ip", "dst_mac"),
        ):
            device = _device_test(entries, ip_key, mac_key)
            if device is not None:
                tests.insert(0, device)
        self.tests = tuple(tests)
        self.days = frozenset(DAYS.index(d) for d in spec.days)
        self.window = None
        if spec.time_from and spec.time_to:
            h1, m1 = map(int, spec.time_from.split(":"))
            h2, m2 = map(int, spec.time_to.split(":"))
            self.window = (h1 * 60 + m1, h2 * 60 + m2)

    def protocol_matches(self, rec: PacketRecord, flow: Flow | None) -> bool:
        wanted = self.spec.protocol
        if wanted == "any":
            return True
        if wanted == "ip":
            return rec.src_ip is not None
        if wanted == "arp":
            return rec.l3 == L3_ARP
        if flow is not None and flow.app == wanted:
            return True
        return transport(rec) == wanted

    def in_time(self, ts_ns: int) -> bool:
        if not self.days and self.window is None:
            return True
        moment = datetime.fromtimestamp(ts_ns / 1e9, UTC)
        if self.days and moment.weekday() not in self.days:
            return False
        if self.window is None:
            return True
        minute = moment.hour * 60 + moment.minute
        start, end = self.window
        return start <= minute < end if start <= end else (minute >= start or minute < end)

    def match(self, contexts: list[dict[str, Any]]) -> dict[str, Any] | None:
        for ctx in contexts:
            if all(test(ctx) for test in self.tests):
                return ctx
        return None


def render_message(template: str, values: Mapping[str, Any]) -> str:
    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if isinstance(value, bytes):
            return value[:32].hex()
        return "-" if value is None else str(value)

    return TEMPLATE_VARIABLE.sub(fill, template)
