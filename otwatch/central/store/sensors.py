"""The sensors registry and each sensor's event-stream position."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from otwatch.central.store.models import CentralState, Sensor
from otwatch.dbcommon import rowcount

__all__ = ["add_dropped", "all_sensors", "get_state", "put_state", "set_stream", "touch_sensor"]


def touch_sensor(session: Session, sensor_id: str, now: int, **values: Any) -> Sensor:
    """The sensor's row, created on first contact; ``values`` update its columns."""
    sensor = session.get(Sensor, sensor_id)
    if sensor is None:
        sensor = Sensor(
            id=sensor_id,
            site="",
            zone="",
            online=False,
            first_seen_ns=now,
            last_seen_ns=now,
            version="",
            health={},
            epoch=None,
            events_hw=0,
            dropped=0,
        )
        session.add(sensor)
    sensor.last_seen_ns = max(sensor.last_seen_ns, now)
    for key, value in values.items():
        setattr(sensor, key, value)
    return sensor


def set_stream(session: Session, sensor_id: str, epoch: str | None, hw: int, now: int) -> None:
    result = session.execute(
        update(Sensor)
        .where(Sensor.id == sensor_id)
        .values(epoch=epoch, events_hw=hw, last_seen_ns=now)
        .execution_options(synchronize_session=False)
    )
    if not rowcount(result):
        touch_sensor(session, sensor_id, now, epoch=epoch, events_hw=hw)


def add_dropped(session: Session, sensor_id: str, count: int, now: int) -> None:
    """Count dropped messages against a known sensor. A drop never creates a sensor row:
    the topic's id of a message that failed validation is not a sensor central knows
    (the count stays in central's totals)."""
    session.execute(
        update(Sensor)
        .where(Sensor.id == sensor_id)
        .values(dropped=func.coalesce(Sensor.dropped, 0) + count)
        .execution_options(synchronize_session=False)
    )


def all_sensors(session: Session) -> list[Sensor]:
    return list(session.scalars(select(Sensor).order_by(Sensor.id)))


def get_state(session: Session, key: str, default: Any = None) -> Any:
    row = session.get(CentralState, key)
    return default if row is None else row.value.get("v", default)


def put_state(session: Session, key: str, value: Any) -> None:
    session.merge(CentralState(key=key, value={"v": value}))
