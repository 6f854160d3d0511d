"""The central database schema (SQLAlchemy 2 typed ORM); its own Alembic tree follows it.

Works on SQLite and PostgreSQL. Alerts are keyed by ``(sensor, alert_id)``: the sensor's own
alert id is unique only per sensor (the spec's CM UUID is ``<sensor alert id>-<system id>``).
The alert columns keep the sensor store's names so ``otwatch.alertdata`` serves both. Times
are integers in nanoseconds since the epoch (UTC). Tables the HTTP API and PCAP storage add
later go in their own ``models_<topic>.py`` subclassing ``Base``, imported by ``schema.py``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from otwatch.dbcommon import NAMING_CONVENTION, PrimaryKey

__all__ = [
    "Alert",
    "AuditEvent",
    "Base",
    "CentralState",
    "Command",
    "Sensor",
]

class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class Sensor(Base):
    """A sensor known to central: where it is, whether it is online, what it reported."""

    __tablename__ = "sensors"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), default="")
    zone: Mapped[str] = mapped_column(String(64), default="")
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_ns: Mapped[int] = mapped_column(BigInteger)
    last_seen_ns: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[str] = mapped_column(String(64), default="")
    health: Mapped[dict[str, Any]]
    epoch: Mapped[str | None] = mapped_column(String(36))
    """The sensor's event stream id; a new one restarts sequence numbering."""
    events_hw: Mapped[int] = mapped_column(BigInteger, default=0)
    """Every event of ``epoch`` up to this sequence number is committed here."""
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    """Messages from this sensor dropped as invalid."""


class Alert(Base):
    """One sensor alert as central holds it (spec section 1), merged per field by HLC."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    sensor: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int] = mapped_column(BigInteger)
    """The alert's id on its sensor."""
    type_id: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    engine: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    close_reason: Mapped[str | None] = mapped_column(String(16))
    dedup_key: Mapped[str] = mapped_column(String(64))
    source_address: Mapped[str | None] = mapped_column(String(64))
    destination_address: Mapped[str | None] = mapped_column(String(64))
    source_mac: Mapped[str | None] = mapped_column(String(17))
    destination_mac: Mapped[str | None] = mapped_column(String(17))
    protocol: Mapped[str | None] = mapped_column(String(32))
    first_detection_ns: Mapped[int] = mapped_column(BigInteger)
    last_detection_ns: Mapped[int] = mapped_column(BigInteger)
    last_activity_ns: Mapped[int] = mapped_column(BigInteger)
    detections: Mapped[int] = mapped_column(BigInteger, default=1)
    site: Mapped[str] = mapped_column(String(64), default="")
    zone: Mapped[str] = mapped_column(String(64), default="")
    tactics: Mapped[list[str]]
    learnable: Mapped[bool]
    mutable: Mapped[bool]
    message: Mapped[str] = mapped_column(Text)
    remediation: Mapped[list[str]]
    fields: Mapped[dict[str, Any]]
    status_hlc: Mapped[int] = mapped_column(BigInteger, default=0)
    status_origin: Mapped[str] = mapped_column(String(16), default="sensor")
    severity_hlc: Mapped[int] = mapped_column(BigInteger, default=0)
    severity_origin: Mapped[str] = mapped_column(String(16), default="sensor")
    received_ns: Mapped[int] = mapped_column(BigInteger)
    """When central last merged a copy from the sensor."""

    __table_args__ = (
        UniqueConstraint("sensor", "alert_id"),
        Index(None, "last_detection_ns"),
        Index(None, "status", "severity"),
    )


class AuditEvent(Base):
    """Every change, wherever it was made: who, where (sensor|central), when, what."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    """The sensor's outbox event id, or a central-made id: re-delivery inserts nothing."""
    sensor: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int | None] = mapped_column(BigInteger)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]]

    __table_args__ = (Index(None, "sensor", "alert_id"),)


class Command(Base):
    """A request to a sensor; pending until the sensor acknowledges it."""

    __tablename__ = "commands"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sensor: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    alert_id: Mapped[int | None] = mapped_column(BigInteger)
    value: Mapped[str | None] = mapped_column(String(64))
    hlc: Mapped[int] = mapped_column(BigInteger, default=0)
    actor: Mapped[str] = mapped_column(String(128))
    issued_ns: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[dict[str, Any]]
    """Kind-specific extras: ``request_id``, ``chunks``, ``from_seq``."""
    status: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, applied or rejected."""
    outcome: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(String(512))
    acked_ns: Mapped[int | None] = mapped_column(BigInteger)
    sent_count: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index(None, "sensor", "status"),)


class CentralState(Base):
    """Small key/value facts about this central (the HLC high-water mark)."""

    __tablename__ = "central_state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]]
