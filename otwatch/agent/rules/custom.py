"""Custom alert rules (spec section 5): the rule model and its validation.

A rule has a name, an alert protocol, optional source and destination devices (IP, CIDR or
MAC), one or more AND-ed conditions on decoded fields (``dst_port == 502``,
``modbus.function_code in 5,6``, ``payload contains "hex:0102"``), an optional day/time
window (UTC), an action (``alert`` or ``event``), a severity and a message template whose
``{field}`` variables are filled from the packet. :func:`validate_rule` turns raw values
(from the CLI or the store) into a :class:`CustomRuleSpec` or raises :class:`RuleError`
naming the bad field; :mod:`otwatch.agent.rules.matching` matches packets against it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from otwatch.agent.decode.ports import OT_PROTOCOLS, TCP_PORTS, UDP_PORTS
from otwatch.errors import OtwatchError

__all__ = [
    "ACTIONS",
    "DAYS",
    "FIELDS",
    "MAC_PATTERN",
    "OPERATORS",
    "PROTOCOLS",
    "TEMPLATE_VARIABLE",
    "Condition",
    "CustomRuleSpec",
    "RuleError",
    "parse_condition",
    "validate_rule",
]

ACTIONS = ("alert", "event")
SEVERITIES = ("low", "medium", "high")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PROTOCOLS = frozenset(
    {"any", "ip", "tcp", "udp", "icmp", "icmpv6", "arp"}
    | set(TCP_PORTS.values()) | set(UDP_PORTS.values()) | OT_PROTOCOLS
)  # fmt: skip

# field name -> (type, group); the group says which decoder fills it
FIELDS: dict[str, tuple[str, str]] = {
    "src_ip": ("ip", "base"),
    "dst_ip": ("ip", "base"),
    "src_mac": ("mac", "base"),
    "dst_mac": ("mac", "base"),
    "src_port": ("int", "base"),
    "dst_port": ("int", "base"),
    "transport": ("str", "base"),
    "protocol": ("str", "base"),
    "vlan": ("int", "base"),
    "ttl": ("int", "base"),
    "length": ("int", "base"),
    "payload_length": ("int", "base"),
    "tcp_flags": ("int", "base"),
    "icmp_type": ("int", "base"),
    "payload": ("bytes", "base"),
    "arp.op": ("int", "arp"),
    "arp.sender_ip": ("ip", "arp"),
    "arp.target_ip": ("ip", "arp"),
    "modbus.function_code": ("int", "modbus"),
    "modbus.unit_id": ("int", "modbus"),
    "dns.query": ("str", "dns"),
    "dns.qtype": ("int", "dns"),
    "dns.rcode": ("int", "dns"),
    "http.method": ("str", "http"),
    "http.path": ("str", "http"),
    "http.host": ("str", "http"),
    "http.user_agent": ("str", "http"),
    "http.status": ("int", "http"),
}
_STR_OPERATORS = (
    "==", "!=", "in", "not_in", "contains", "not_contains", "startswith", "endswith", "matches",
)  # fmt: skip
OPERATORS: dict[str, frozenset[str]] = {
    "int": frozenset({"==", "!=", "<", "<=", ">", ">=", "in", "not_in"}),
    "str": frozenset(_STR_OPERATORS),
    "ip": frozenset({"==", "!=", "in", "not_in"}),
    "mac": frozenset({"==", "!=", "in", "not_in"}),
    "bytes": frozenset({"contains", "not_contains", "startswith"}),
}
TEMPLATE_NAMES = frozenset(FIELDS) | {
    "rule_name", "source_address", "destination_address", "source_mac", "destination_mac",
}  # fmt: skip
TEMPLATE_VARIABLE = re.compile(r"\{([a-z_.]+)\}")
MAC_PATTERN = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME_MAX = 128
_MESSAGE_MAX = 1000


class RuleError(OtwatchError):
    """A custom rule field is invalid; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {message}")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: Any
    """Normalised: int, str, bytes, a network, a MAC text, or a tuple of those for in/not_in."""

    def as_dict(self) -> dict[str, Any]:
        value = self.value
        value = [_plain(v) for v in value] if isinstance(value, tuple) else _plain(value)
        return {"field": self.field, "op": self.op, "value": value}

    def text(self) -> str:
        value = self.as_dict()["value"]
        shown = ",".join(map(str, value)) if isinstance(value, list) else value
        return f"{self.field} {self.op} {shown}"


@dataclass(frozen=True, slots=True)
class CustomRuleSpec:
    name: str
    protocol: str
    sources: tuple[str, ...]
    destinations: tuple[str, ...]
    conditions: tuple[Condition, ...]
    days: tuple[str, ...]
    time_from: str | None
    time_to: str | None
    action: str
    severity: str
    message: str
    enabled: bool = True
    id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protocol": self.protocol,
            "sources": list(self.sources),
            "destinations": list(self.destinations),
            "conditions": [c.as_dict() for c in self.conditions],
            "days": list(self.days),
            "time_from": self.time_from,
            "time_to": self.time_to,
            "action": self.action,
            "severity": self.severity,
            "message": self.message,
            "enabled": self.enabled,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "hex:" + value.hex()
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value.network_address) if value.prefixlen == value.max_prefixlen else str(value)
    if isinstance(value, re.Pattern):
        return value.pattern
    return value


def parse_condition(text: str) -> dict[str, str]:
    """``FIELD OP VALUE`` (value may contain spaces; quotes around it are removed)."""
    parts = text.strip().split(None, 2)
    if len(parts) < 3:
        raise RuleError("conditions", f"{text!r} is not 'FIELD OPERATOR VALUE'")
    value = parts[2].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1]
    return {"field": parts[0], "op": parts[1], "value": value}


def _address(where: str, text: str) -> str:
    value = str(text).strip().lower()
    if MAC_PATTERN.match(value):
        return value
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise RuleError(
            where, f"{text!r} is not an IP address, CIDR subnet or MAC address"
        ) from None


def _scalar(where: str, kind: str, op: str, raw: Any) -> Any:
    if kind == "int":
        if isinstance(raw, bool):
            raise RuleError(where, f"{raw!r} is not a number")
        if isinstance(raw, int):
            return raw
        try:
            return int(str(raw).strip(), 0)
        except ValueError:
            raise RuleError(where, f"{raw!r} is not a number") from None
    if kind == "ip":
        try:
            return ipaddress.ip_network(str(raw).strip(), strict=False)
        except ValueError:
            raise RuleError(where, f"{raw!r} is not an IP address or CIDR subnet") from None
    if kind == "mac":
        value = str(raw).strip().lower().replace("-", ":")
        if not MAC_PATTERN.match(value):
            raise RuleError(where, f"{raw!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        return value
    if kind == "bytes":
        text = str(raw)
        if text.startswith("hex:"):
            try:
                pattern = bytes.fromhex(text[4:])
            except ValueError:
                raise RuleError(where, f"{text!r} is not valid hex after 'hex:'") from None
        else:
            pattern = text.encode("utf-8")
        if not pattern:
            raise RuleError(where, "the pattern is empty")
        return pattern
    text = str(raw)
    if op == "matches":
        try:
            return re.compile(text)
        except re.error as exc:
            raise RuleError(where, f"bad regular expression {text!r}: {exc}") from None
    return text


def _condition(index: int, raw: Any) -> Condition:
    where = f"conditions[{index + 1}]"
    if isinstance(raw, str):
        raw = parse_condition(raw)
    if not isinstance(raw, Mapping) or not {"field", "op", "value"} <= set(raw):
        raise RuleError(where, "needs field, op and value")
    name, op = str(raw["field"]), str(raw["op"])
    if name not in FIELDS:
        raise RuleError(where, f"unknown field {name!r} (known: {', '.join(sorted(FIELDS))})")
    kind = FIELDS[name][0]
    if op not in OPERATORS[kind]:
        allowed = ", ".join(sorted(OPERATORS[kind]))
        raise RuleError(where, f"operator {op!r} does not apply to {name} (use {allowed})")
    raw_value = raw["value"]
    if op in ("in", "not_in"):
        items = raw_value if isinstance(raw_value, list | tuple) else str(raw_value).split(",")
        values = tuple(_scalar(where, kind, op, v) for v in items if str(v).strip())
        if not values:
            raise RuleError(where, f"{name} {op} needs at least one value")
        return Condition(name, op, values)
    return Condition(name, op, _scalar(where, kind, op, raw_value))


def _clock(where: str, value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not _HHMM.match(str(value)):
        raise RuleError(where, f"{value!r} is not a time HH:MM (UTC)")
    return str(value)


def validate_rule(raw: Mapping[str, Any]) -> CustomRuleSpec:
    """Check every field of a rule; the first problem raises RuleError naming its field."""
    name = str(raw.get("name") or "").strip()
    if not name:
        raise RuleError("name", "a rule needs a name")
    if len(name) > _NAME_MAX or '"' in name:
        raise RuleError("name", f"at most {_NAME_MAX} characters and no double quote")
    protocol = str(raw.get("protocol") or "any").strip().lower()
    if protocol not in PROTOCOLS:
        raise RuleError("protocol", f"unknown protocol {protocol!r} (e.g. any, tcp, modbus)")
    sources = tuple(_address("source", s) for s in raw.get("sources") or ())
    destinations = tuple(_address("destination", d) for d in raw.get("destinations") or ())
    raw_conditions = list(raw.get("conditions") or ())
    if not raw_conditions:
        raise RuleError("conditions", "a rule needs at least one condition")
    conditions = tuple(_condition(i, c) for i, c in enumerate(raw_conditions))
    days = tuple(str(d).strip().lower()[:3] for d in raw.get("days") or ())
    for day in days:
        if day not in DAYS:
            raise RuleError("days", f"{day!r} is not a day ({', '.join(DAYS)})")
    time_from = _clock("time_from", raw.get("time_from"))
    time_to = _clock("time_to", raw.get("time_to"))
    if (time_from is None) != (time_to is None):
        raise RuleError("time_from", "give both time_from and time_to, or neither")
    action = str(raw.get("action") or "alert").lower()
    if action not in ACTIONS:
        raise RuleError("action", f"{action!r} is not one of {', '.join(ACTIONS)}")
    severity = str(raw.get("severity") or "medium").lower()
    if severity not in SEVERITIES:
        raise RuleError("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    message = str(raw.get("message") or "").strip() or f"custom rule {name} matched"
    if len(message) > _MESSAGE_MAX:
        raise RuleError("message", f"longer than {_MESSAGE_MAX} characters")
    unknown = sorted(set(TEMPLATE_VARIABLE.findall(message)) - TEMPLATE_NAMES)
    if unknown or message.count("{") != len(TEMPLATE_VARIABLE.findall(message)):
        shown = ", ".join(unknown) if unknown else "a '{' without a field name"
        raise RuleError("message", f"unknown template variable: {shown}")
    return CustomRuleSpec(
        name=name,
        protocol=protocol,
        sources=sources,
        destinations=destinations,
        conditions=conditions,
        days=days,
        time_from=time_from,
        time_to=time_to,
        action=action,
        severity=severity,
        message=message,
        enabled=bool(raw.get("enabled", True)),
        id=raw.get("id"),
    )
