"""The alert columns both stores map: one declaration for the sensor's and central's ``alerts``.

``AlertColumns`` is a plain declarative mixin: each store's ``Alert`` adds its own key, extra
columns and indexes (and its ``Base`` resolves ``list[str]`` and ``dict[str, Any]`` to JSON).
The sync message ``AlertSnapshot`` carries the same columns but ``sensor`` (the envelope
names it) plus the sensor's ``id``; a test holds the three to one list.

Changing a column here changes both schemas: each Alembic tree then needs its own revision.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

__all__ = ["ALERT_COLUMNS", "AlertColumns"]


class AlertColumns:
    """One alert as the Alerts page shows it (spec section 1)."""

    type_id: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    engine: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    close_reason: Mapped[str | None] = mapped_column(String(16))
    dedup_key: Mapped[str] = mapped_column(String(64))
    """Digest of the type id and the catalog's key fields: 'the same traffic'."""
    source_address: Mapped[str | None] = mapped_column(String(64))
    destination_address: Mapped[str | None] = mapped_column(String(64))
    source_mac: Mapped[str | None] = mapped_column(String(17))
    destination_mac: Mapped[str | None] = mapped_column(String(17))
    protocol: Mapped[str | None] = mapped_column(String(32))
    first_detection_ns: Mapped[int] = mapped_column(BigInteger)
    last_detection_ns: Mapped[int] = mapped_column(BigInteger)
    last_activity_ns: Mapped[int] = mapped_column(BigInteger)
    detections: Mapped[int] = mapped_column(BigInteger, default=1)
    sensor: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(64), default="")
    zone: Mapped[str] = mapped_column(String(64), default="")
    tactics: Mapped[list[str]]
    learnable: Mapped[bool]
    mutable: Mapped[bool]
    message: Mapped[str] = mapped_column(Text)
    remediation: Mapped[list[str]]
    fields: Mapped[dict[str, Any]]
    """Detection parameters (function code, port, domain, ...) of the first detection."""
    status_hlc: Mapped[int] = mapped_column(BigInteger, default=0)
    """Hybrid logical clock of the last status change: per-field last-writer-wins in sync."""
    severity_hlc: Mapped[int] = mapped_column(BigInteger, default=0)


ALERT_COLUMNS = tuple(name for name in AlertColumns.__annotations__)
"""The mixin's column names, in declaration order."""
