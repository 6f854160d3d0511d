"""Central tables of the HTTP API: API tokens, PCAP pulls, cross-sensor unification.

- ``api_tokens``: a token's name (the audit actor), role and the SHA-256 of its secret (the
  secret itself is shown once and never stored).
- ``pcap_requests``: one PCAP pull from a sensor (pending until the file is verified and
  stored, or the sensor says it no longer has it); the file is cached 48 h.
- ``alert_members``: alerts unified into another sensor's alert (spec section 2, de-dup 3).
  Only members have a row, so listing hides them with one small anti-join.
- ``alert_counts``: alerts per sensor/site/zone/engine/category/name/status/severity, kept
  exact by triggers (``store.derived``), for group-by counts.

Plus the indexes on ``alerts`` that the API's queries need (``ALERT_INDEXES``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from otwatch.central.store.models import Alert, Base
from otwatch.dbcommon import PrimaryKey

__all__ = ["ALERT_INDEXES", "AlertCount", "AlertMember", "ApiToken", "PcapRequest"]


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    """reader or admin."""
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    revoked_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_used_ns: Mapped[int | None] = mapped_column(BigInteger)


class PcapRequest(Base):
    __tablename__ = "pcap_requests"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sensor: Mapped[str] = mapped_column(String(64))
    alert_id: Mapped[int] = mapped_column(BigInteger)
    """The alert's id on its sensor."""
    command_id: Mapped[str | None] = mapped_column(String(36))
    requested_by: Mapped[str] = mapped_column(String(128))
    requested_ns: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    """pending, done, not_available, failed or expired."""
    reason: Mapped[str | None] = mapped_column(String(512))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    done_ns: Mapped[int | None] = mapped_column(BigInteger)
    expires_ns: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "sensor", "alert_id"),)


class AlertCount(Base):
    """How many alerts have these values (kept by triggers, see ``store.derived``)."""

    __tablename__ = "alert_counts"

    sensor: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone: Mapped[str] = mapped_column(String(64), primary_key=True)
    engine: Mapped[str] = mapped_column(String(32), primary_key=True)
    category: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    severity: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class AlertMember(Base):
    """``alert_pk`` (a central ``alerts.id``) is shown as part of ``primary_pk``."""

    __tablename__ = "alert_members"

    alert_pk: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=False)
    primary_pk: Mapped[int] = mapped_column(BigInteger, index=True)
    sensor: Mapped[str] = mapped_column(String(64))
    unified_ns: Mapped[int] = mapped_column(BigInteger)


# Indexes on the ingest's ``alerts`` table that the API needs (bench/central.py: list and
# group-by p95 over 1,000,000 alerts). Group-by counts come from ``alert_counts`` (or, with a
# time or text filter, from the indexes of those filters), so no index per group column.
ALERT_INDEXES = {
    "ix_alerts_unify": (
        "type_id", "zone", "source_address", "destination_address", "first_detection_ns"
    ),
    "ix_alerts_first_detection_ns": ("first_detection_ns",),
    "ix_alerts_sensor_last_detection_ns_id": ("sensor", "last_detection_ns", "id"),
    "ix_alerts_severity_last_detection_ns_id": ("severity", "last_detection_ns", "id"),
    "ix_alerts_severity_rank_id": ("severity_rank", "id"),
    "ix_alerts_engine_last_detection_ns": ("engine", "last_detection_ns"),
    "ix_alerts_site_last_detection_ns": ("site", "last_detection_ns"),
    "ix_alerts_source_address": ("source_address",),
    "ix_alerts_destination_address": ("destination_address",),
}  # fmt: skip
for _name, _columns in ALERT_INDEXES.items():
    Index(_name, *(Alert.__table__.c[c] for c in _columns))
