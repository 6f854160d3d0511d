"""Central table of the device inventory: every sensor's devices, one row each.

A row is keyed by ``(sensor, key)`` (the sensor's device key: its IP, or ``mac:<MAC>``);
``device_id`` is the sensor's own id, which a forgotten and re-learned device changes. The
plain columns are what lists filter and sort on; ``detail`` holds the rest of the sensor's
snapshot (facts, names, MAC history, services, peers, evidence) as sent. ``central_override``
is the last override made centrally: what it set, who, when, its command, and whether the
sensor has applied it (``state``: pending, applied or rejected).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from otwatch.central.store.models import Base
from otwatch.dbcommon import PrimaryKey

__all__ = ["CentralDevice"]


class CentralDevice(Base):
    __tablename__ = "central_devices"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    sensor: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[int] = mapped_column(BigInteger)
    key: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    ip_hex: Mapped[str | None] = mapped_column(String(32))
    """The IP as 32 hex digits (IPv4 mapped into IPv6): sorts numerically, and a subnet is
    a range of it (``devices.ip_range``)."""
    mac: Mapped[str | None] = mapped_column(String(17))
    vlan: Mapped[int | None] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(255))
    vendor: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    firmware: Mapped[str | None] = mapped_column(String(64))
    device_type: Mapped[str] = mapped_column(String(32), default="Unknown")
    purdue_level: Mapped[int | None] = mapped_column(Integer)
    type_reason: Mapped[str] = mapped_column(String(255), default="")
    protocols: Mapped[list[str]] = mapped_column(JSON, default=list)
    peers: Mapped[int] = mapped_column(Integer, default=0)
    learned: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_ns: Mapped[int] = mapped_column(BigInteger)
    last_seen_ns: Mapped[int] = mapped_column(BigInteger)
    packets_in: Mapped[int] = mapped_column(BigInteger, default=0)
    packets_out: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    name_override: Mapped[str | None] = mapped_column(String(255))
    type_override: Mapped[str | None] = mapped_column(String(32))
    purdue_override: Mapped[int | None] = mapped_column(Integer)
    """The overrides the sensor reports (applied there)."""
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    central_override: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    received_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("sensor", "key"),
        Index(None, "sensor", "ip"),
        Index(None, "sensor", "device_id"),
        Index(None, "ip_hex"),
        Index(None, "last_seen_ns"),
        Index(None, "vendor"),
        Index(None, "device_type"),
    )
