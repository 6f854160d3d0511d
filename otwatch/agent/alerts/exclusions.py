"""Exclusion rules (spec section 5): planned noise dropped before de-duplication.

Conditions are AND-ed; an empty condition matches everything. The device condition is the
listed subnets and MAC addresses together (any one matching is enough), checked on the
source, the destination or either side (``direction``). Engines are given as the set of
type ids they raise; sensors are filtered when the rules are loaded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from otwatch.agent.engines.detection import Detection

__all__ = ["ExclusionMatcher", "ExclusionSpec"]


@dataclass(frozen=True, slots=True)
class ExclusionSpec:
    name: str
    alert_types: frozenset[str]
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    start_ns: int | None
    end_ns: int | None
    macs: frozenset[str] = frozenset()
    """Lower-case ``aa:bb:cc:dd:ee:ff`` addresses."""
    direction: str = "any"
    """``source``, ``destination`` or ``any``: where the listed devices must be."""
    engine_types: frozenset[str] | None = None
    """Type ids of the rule's engines; None when the rule names no engine."""

    def matches(self, det: Detection) -> bool:
        if self.alert_types and det.type_id not in self.alert_types:
            return False
        if self.engine_types is not None and det.type_id not in self.engine_types:
            return False
        if self.start_ns is not None and det.ts_ns < self.start_ns:
            return False
        if self.end_ns is not None and det.ts_ns > self.end_ns:
            return False
        if not self.subnets and not self.macs:
            return True
        sides = _SIDES.get(self.direction, _SIDES["any"])
        fields = det.fields
        for address_field, mac_field in sides:
            if self.macs:
                mac = fields.get(mac_field)
                if mac and str(mac).lower() in self.macs:
                    return True
            text = fields.get(address_field)
            if not text or not self.subnets:
                continue
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if any(address in net for net in self.subnets):
                return True
        return False


_SIDES = {
    "source": (("source_address", "source_mac"),),
    "destination": (("destination_address", "destination_mac"),),
    "any": (("source_address", "source_mac"), ("destination_address", "destination_mac")),
}


class ExclusionMatcher:
    def __init__(self, specs: Iterable[ExclusionSpec] = ()) -> None:
        self.specs = tuple(specs)

    def __bool__(self) -> bool:
        return bool(self.specs)

    def matching(self, det: Detection) -> str | None:
        """Name of the first rule that excludes ``det``, or None."""
        for spec in self.specs:
            if spec.matches(det):
                return spec.name
        return None
