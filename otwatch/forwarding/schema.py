"""Forwarding tables, declared once and mapped into both stores (sensor and central).

Each store subclasses these mixins with its own ``Base`` (``agent/store/models_forwarding.py``,
``central/store/models_forwarding.py``), so the rules, the per-target cursors and the
counters have the same columns on a standalone sensor and on central.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from otwatch.dbcommon import PrimaryKey

__all__ = ["RuleColumns", "TargetColumns"]


class RuleColumns:
    """A forwarding rule: which alerts (filters) and whether their later changes go too."""

    __tablename__ = "forwarding_rules"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    filters: Mapped[dict[str, Any]]
    """``rules.RuleFilter`` as JSON; an absent or empty filter matches every alert."""
    updates: Mapped[bool] = mapped_column(default=False)
    """Also forward status/severity changes and closures of the alerts it forwarded."""
    start_alert_id: Mapped[int] = mapped_column(BigInteger, default=0)
    """The highest alert id when the rule was made: it applies to alerts raised after it."""
    created_ns: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))


class TargetColumns:
    """One destination of a rule, with its own delivery cursor and counters."""

    __tablename__ = "forwarding_targets"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True)
    rule_id: Mapped[int] = mapped_column(BigInteger, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(16))
    """``syslog``, ``file`` or ``webhook``."""
    settings: Mapped[dict[str, Any]]
    """``targets.TargetSpec`` as JSON: addresses, format, file *paths* of secrets."""
    change_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    """Audit rows up to this id are delivered (or did not match)."""
    alert_cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    """Central: alerts up to this id were delivered as new (the sensor uses audit rows)."""
    sent: Mapped[int] = mapped_column(BigInteger, default=0)
    failed: Mapped[int] = mapped_column(BigInteger, default=0)
    """Failed delivery attempts (each retried)."""
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    """Events skipped because the target lagged more than the queue limit."""
    last_error: Mapped[str | None] = mapped_column(String(512))
    last_error_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_sent_ns: Mapped[int | None] = mapped_column(BigInteger)
