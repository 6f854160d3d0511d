"""Central tables of the web portal: users, their sign-in sessions and their preferences.

- ``portal_users``: a local account (name, role reader/admin, argon2id hash, disabled flag).
- ``portal_sessions``: one signed-in browser. Only the SHA-256 of the session id is stored,
  so a copy of the database does not sign anyone in; the CSRF token is kept as is (it is
  checked against a header, never used alone).
- ``portal_prefs``: small JSON values per user and key (the grid's columns, ...).

Plus indexes on ``alerts`` for sorting the Alerts grid by any column (``SORT_INDEXES``):
a page sorted by ``(column, id)`` is then read from the index in order, without sorting the
tens of thousands of alerts that share a site or a status (bench/portal.py). Tactics, a JSON
list, are sorted by their text through an expression index.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, String, Text, cast
from sqlalchemy.orm import Mapped, mapped_column

from otwatch.central.store.models import Alert, Base
from otwatch.dbcommon import PrimaryKey

__all__ = ["SORT_INDEXES", "PortalSession", "PortalUser", "UserPref"]


class PortalUser(Base):
    __tablename__ = "portal_users"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    """reader or admin."""
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    last_login_ns: Mapped[int | None] = mapped_column(BigInteger)


class PortalSession(Base):
    __tablename__ = "portal_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("portal_users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_ns: Mapped[int] = mapped_column(BigInteger)
    last_seen_ns: Mapped[int] = mapped_column(BigInteger)
    idle_expires_ns: Mapped[int] = mapped_column(BigInteger)
    """Moves forward with use; never past ``expires_ns``."""
    expires_ns: Mapped[int] = mapped_column(BigInteger)
    """The absolute limit from sign-in."""


class UserPref(Base):
    __tablename__ = "portal_prefs"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("portal_users.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_ns: Mapped[int] = mapped_column(BigInteger)


SORT_INDEXES = {
    f"ix_alerts_sort_{column}": (column, "id")
    for column in (
        "name", "site", "engine", "status", "sensor", "zone", "category", "protocol", "type_id",
        "last_activity_ns",
    )
}  # fmt: skip
for _name, _columns in SORT_INDEXES.items():
    Index(_name, *(Alert.__table__.c[c] for c in _columns))
Index("ix_alerts_sort_tactics", cast(Alert.__table__.c.tactics, Text), Alert.__table__.c.id)
