"""Small typed accessors for the ``sensor_state`` key/value table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from otwatch.agent.store.models import SensorState

__all__ = ["bump_version", "get_state", "put_state"]

ALERTS_VERSION = "alerts_version"


def get_state(session: Session, key: str, default: Any = None) -> Any:
    row = session.scalar(select(SensorState).where(SensorState.key == key))
    return default if row is None else row.value.get("v", default)


def put_state(session: Session, key: str, value: Any) -> None:
    """Insert or replace atomically (two processes may write the same key at once)."""
    statement = insert(SensorState).values(key=key, value={"v": value})
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["key"], set_={"value": statement.excluded.value}
        )
    )


def bump_version(session: Session, key: str = ALERTS_VERSION) -> int:
    """Increment a change counter that long-running readers poll to refresh their caches."""
    version = int(get_state(session, key, 0)) + 1
    put_state(session, key, version)
    return version
