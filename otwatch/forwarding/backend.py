"""The two stores forwarding works on, behind one small interface: the sensor's SQLite store
and central's (SQLite or PostgreSQL). Everything else in the package takes a ``Backend``;
each store makes its own (``agent/store/forwarding.py``, ``central/store/forwarding.py``), so
this package imports neither side."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

__all__ = ["Backend"]

_INSTANCE_KEY = "forwarding_instance"


@dataclass(frozen=True)
class Backend:
    kind: str
    """``sensor`` or ``central``."""
    store: Any
    """Anything with ``session()`` (one transaction) and ``engine``."""
    alert: Any
    audit: Any
    rule: Any
    target: Any
    get_state: Callable[[Session, str, Any], Any]
    put_state: Callable[[Session, str, Any], None]

    @property
    def central(self) -> bool:
        return self.kind == "central"

    @property
    def postgres(self) -> bool:
        return self.store.engine.dialect.name == "postgresql"

    def instance(self, session: Session) -> str:
        """This store's forwarding id (made once): event ids stay unique if a database is
        rebuilt and its row ids start again."""
        value = self.get_state(session, _INSTANCE_KEY, None)
        if value is None:
            value = str(uuid.uuid4())
            self.put_state(session, _INSTANCE_KEY, value)
        return str(value)

    def audit_row(self, action: str, actor: str, detail: dict[str, Any], now: int) -> Any:
        """An audit-log row for an administrative change (no alert)."""
        if self.central:
            return self.audit(
                event_id=str(uuid.uuid4()),
                sensor="",
                alert_id=None,
                ts_ns=now,
                actor=actor[:128],
                origin="central",
                action=action,
                detail=detail,
            )
        return self.audit(
            alert_id=None,
            ts_ns=now,
            actor=actor[:128],
            origin="sensor",
            action=action,
            detail=detail,
        )
