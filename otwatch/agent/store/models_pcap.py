"""Tables of the rolling PCAP ring index and the per-alert evidence files.

Paths are relative to the data directory when they lie inside it (so the directory can be
moved), absolute otherwise. Times are nanoseconds since the epoch, as everywhere in the store.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from otwatch.agent.store.models import Base, PrimaryKey

__all__ = ["PcapEvidence", "PcapSegment"]


class PcapSegment(Base):
    """One segment file of the ring: what it holds, for extraction without reading it all."""

    __tablename__ = "pcap_segments"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    path: Mapped[str] = mapped_column(String(512), unique=True)
    writer: Mapped[str] = mapped_column(String(32))
    """Which writer owns it: ``w0``, ``w1``… (capture workers) or ``replay``."""
    owner_pid: Mapped[int] = mapped_column(Integer)
    """Process writing it while open; a dead owner means the segment needs repair."""
    linktype: Mapped[int] = mapped_column(Integer)
    nanosecond: Mapped[bool]
    first_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_ns: Mapped[int | None] = mapped_column(BigInteger)
    packets: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    """File size that holds complete records (pcap header included)."""
    closed: Mapped[bool] = mapped_column(default=False)
    created_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index(None, "first_ns"),
        Index(None, "last_ns"),
        Index(None, "closed", "first_ns"),
    )


class PcapEvidence(Base):
    """The evidence file of one alert: its hosts' packets around its detections."""

    __tablename__ = "pcap_evidence"

    alert_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16))
    """``pending`` (window not yet complete), ``ready``, ``empty``, ``unavailable`` (the ring no
    longer held the window) or ``evicted`` (deleted for the evidence budget)."""
    path: Mapped[str | None] = mapped_column(String(512))
    hosts: Mapped[list[str]]
    """IP addresses (or MAC addresses when the alert has none) whose packets are kept."""
    window_start_ns: Mapped[int] = mapped_column(BigInteger)
    window_end_ns: Mapped[int] = mapped_column(BigInteger)
    covered_until_ns: Mapped[int | None] = mapped_column(BigInteger)
    """Extraction has looked at the ring up to this packet time."""
    packets: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    updated_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "status", "window_end_ns"), Index(None, "updated_ns"))
