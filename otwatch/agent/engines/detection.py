"""What an engine emits: a ``Detection`` with a de-duplication key built from the catalog.

The key is never assembled by hand: ``DetectionFactory.make`` takes the values of the fields
the catalog declares for the type, so two detections of 'the same traffic' always agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, NamedTuple

from otwatch.alerts.catalog import Catalog

__all__ = ["Detection", "DetectionFactory", "Repeat", "dedup_key"]

_SEP = "\x1f"


def dedup_key(type_id: str, key_fields: tuple[str, ...], fields: Mapping[str, Any]) -> str:
    """Stable digest of the type and its key field values (missing values count as empty)."""
    parts = [type_id]
    for name in key_fields:
        value = fields.get(name)
        parts.append("" if value is None else str(value))
    return hashlib.blake2b(_SEP.join(parts).encode(), digest_size=16).hexdigest()


class Detection(NamedTuple):
    """One observation of an alert type's trigger.

    ``fields`` holds the standard alert fields an engine knows (``source_address``,
    ``destination_address``, ``source_mac``, ``destination_mac``, ``protocol``) plus
    type-specific parameters (``function_code``, ``port``, ...); ``message`` names the devices
    and the exact operation. A named tuple: built for every detection, so it is built
    cheaply (half the cost of a frozen dataclass); ``_replace`` makes a changed copy.
    """

    type_id: str
    dedup_key: str
    ts_ns: int
    message: str
    fields: Mapping[str, Any]

    def key_fields(self, names: tuple[str, ...]) -> dict[str, Any]:
        return {name: self.fields.get(name) for name in names}


class Repeat(NamedTuple):
    """What an engine returns instead of a list when a packet raises again exactly the
    detections it raised before but for their time (a refused request repeated unchanged: an
    alert storm without a baseline). The pipeline counts each of ``detections`` at
    ``ts_ns`` as if it had been built again with that time, without building it: the alert
    manager folds it into the alert already pending for its key."""

    detections: tuple[Detection, ...]
    ts_ns: int


class DetectionFactory:
    """Builds detections for a catalog; an unknown type id fails at set-up, not per packet."""

    def __init__(self, catalog: Catalog) -> None:
        self._key_fields = {type_id: t.dedup_key for type_id, t in catalog.items()}

    def key_fields(self, type_id: str) -> tuple[str, ...]:
        return self._key_fields[type_id]

    def make(self, type_id: str, ts_ns: int, message: str, **fields: Any) -> Detection:
        key_fields = self._key_fields[type_id]
        return Detection(type_id, dedup_key(type_id, key_fields, fields), ts_ns, message, fields)
