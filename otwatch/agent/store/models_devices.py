"""Sensor table of the device inventory (``agent/inventory``): one row per device.

The JSON columns hold what was merged from the packet path's batches (MAC history, names,
identification facts with source and time, services, peers, role evidence); the plain
columns are derived from them at each merge (and from the user's overrides) so that lists
filter and sort in SQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from otwatch.agent.store.models import Base
from otwatch.dbcommon import PrimaryKey

__all__ = ["DeviceRow"]


class DeviceRow(Base):
    """One device: an IP address, or a MAC for a device without one."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    ip: Mapped[str | None] = mapped_column(String(45))
    mac: Mapped[str | None] = mapped_column(String(17), index=True)
    vlan: Mapped[int | None]
    first_seen_ns: Mapped[int] = mapped_column(BigInteger)
    last_seen_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    packets_in: Mapped[int] = mapped_column(BigInteger, default=0)
    packets_out: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_in: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    macs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """MAC -> [first_ns, last_ns]: the IP's MAC history."""
    names: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """name -> {"source", "ts_ns"}."""
    facts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    """[{"field", "value", "source", "ts_ns"}]: the device's own identification."""
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    peers: Mapped[list[str]] = mapped_column(JSON, default=list)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # derived at each merge
    name: Mapped[str | None] = mapped_column(String(255))
    vendor: Mapped[str | None] = mapped_column(String(255), index=True)
    model: Mapped[str | None] = mapped_column(String(255))
    firmware: Mapped[str | None] = mapped_column(String(64))
    device_type: Mapped[str] = mapped_column(String(32), default="Unknown", index=True)
    purdue_level: Mapped[int | None]
    type_reason: Mapped[str] = mapped_column(String(255), default="")
    protocols: Mapped[list[str]] = mapped_column(JSON, default=list)
    learned: Mapped[bool] = mapped_column(default=False)
    # user overrides (win everywhere)
    name_override: Mapped[str | None] = mapped_column(String(255))
    type_override: Mapped[str | None] = mapped_column(String(32))
    purdue_override: Mapped[int | None]
    updated_ns: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index(None, "ip"),)
