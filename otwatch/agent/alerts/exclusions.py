"""Exclusion rules (spec section 5): planned noise dropped before de-duplication.

Conditions are AND-ed; an empty condition matches everything.
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

    def matches(self, det: Detection) -> bool:
        if self.alert_types and det.type_id not in self.alert_types:
            return False
        if self.start_ns is not None and det.ts_ns < self.start_ns:
            return False
        if self.end_ns is not None and det.ts_ns > self.end_ns:
            return False
        if not self.subnets:
            return True
        for field in ("source_address", "destination_address"):
            text = det.fields.get(field)
            if not text:
                continue
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            if any(address in net for net in self.subnets):
                return True
        return False


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
