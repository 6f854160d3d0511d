"""The sensor database schema (SQLAlchemy 2 typed ORM); Alembic migrations follow it.

Times are integers in nanoseconds since the epoch (UTC): cheap to compare and index, and
formatted as ISO 8601 only at the edges (CLI, sync messages).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Index, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from otwatch.alerts.columns import AlertColumns
from otwatch.dbcommon import NAMING_CONVENTION, PrimaryKey

__all__ = [
    "Alert",
    "AlertRule",
    "AuditEvent",
    "Base",
    "BaselineFact",
    "ExclusionRule",
    "OutboxEvent",
    "SensorState",
]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Alert(AlertColumns, Base):
    """One alert as the sensor's Alerts page shows it (spec section 1)."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)

    __table_args__ = (
        Index(None, "dedup_key", "status"),
        Index(None, "last_detection_ns"),
        Index(None, "status", "severity"),
    )


class AuditEvent(Base):
    """Append-only record of every change: who, from where, when, what."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    alert_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]]


class AlertRule(Base):
    """A learn (baseline) or mute rule: traffic with this de-duplication key raises nothing."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    type_id: Mapped[str] = mapped_column(String(80))
    dedup_key: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(BigInteger)
    key_fields: Mapped[dict[str, Any]]
    created_ns: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16))

    __table_args__ = (UniqueConstraint("kind", "dedup_key"),)


class ExclusionRule(Base):
    """Planned-noise rule (spec section 5): matching detections are dropped and counted."""

    __tablename__ = "exclusion_rules"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    alert_types: Mapped[list[str]]
    """Type ids; empty matches every type."""
    subnets: Mapped[list[str]]
    """CIDRs matched against source or destination; empty matches every address."""
    start_ns: Mapped[int | None] = mapped_column(BigInteger)
    end_ns: Mapped[int | None] = mapped_column(BigInteger)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    # Revision 0003 (detection rules): the remaining conditions of the spec's exclusion rules.
    engines: Mapped[list[str]] = mapped_column(default=list)
    """Engine names (policy_violation, anomaly, ...); empty matches every engine."""
    sensors: Mapped[list[str]] = mapped_column(default=list)
    """Sensor ids the rule applies on; empty means every sensor."""
    macs: Mapped[list[str]] = mapped_column(default=list)
    """Device MAC addresses, matched like ``subnets`` (either one matching is enough)."""
    direction: Mapped[str] = mapped_column(String(16), default="any")
    """Which side the devices must be on: ``source``, ``destination`` or ``any``."""
    ticket_id: Mapped[str | None] = mapped_column(String(64))
    """Maintenance-window ticket (spec: maintenanceWindow ``ticketId``), if any."""


class BaselineFact(Base):
    """Something learned about the plant: a device, a connection, an operation."""

    __tablename__ = "baseline"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    attrs: Mapped[dict[str, Any]]
    first_seen_ns: Mapped[int] = mapped_column(BigInteger)
    last_seen_ns: Mapped[int] = mapped_column(BigInteger)
    origin: Mapped[str] = mapped_column(String(16), default="learning")

    __table_args__ = (UniqueConstraint("kind", "key"),)


class OutboxEvent(Base):
    """A change for the sync daemon to deliver; deleted only after central acknowledges it.

    ``payload`` is None for alert snapshots (kind ``alert``): the sync daemon reads the
    alert's current state when it publishes, so many detections coalesce into one row.
    """

    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    alert_id: Mapped[int | None] = mapped_column(BigInteger)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    published_ns: Mapped[int | None] = mapped_column(BigInteger)
    device_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        Index(None, "alert_id", "kind", "published_ns"),
        Index(None, "device_id", "published_ns"),
    )


class SensorState(Base):
    """Small key/value facts about this sensor (learning mode, traffic clock, HLC)."""

    __tablename__ = "sensor_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]]
