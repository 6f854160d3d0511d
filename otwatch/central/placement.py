"""Central owns where each sensor is (site and zone).

Unification groups alerts of one site and zone across sensors, so a sensor that could claim
any zone in its birth could join another sensor's alerts (issue 15). Placement is therefore
central's: a sensor's first birth pins the site and zone it claims (``placed_by`` =
``sensor``), an administrator changes it (``otwatch central sensor set``, ``placed_by`` =
``admin``), and a later claim that differs is ignored and logged as a security event. The
alerts central stores take their sensor's placement, not the site and zone in their
snapshot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from otwatch.central.store import sensors as sensor_store
from otwatch.central.store.models import Alert, Sensor
from otwatch.dbcommon import rowcount
from otwatch.errors import OtwatchError
from otwatch.seclog import security_event

__all__ = ["PlacementError", "assign", "claim", "place_rows"]

MAX_LENGTH = 64


class PlacementError(OtwatchError):
    """An administrator's placement that cannot be applied."""


def claim(session: Session, sensor_id: str, site: str, zone: str, now: int) -> bool:
    """A sensor's birth says where it is. The first claim places it; a later one that
    differs is ignored (True: the claim was taken)."""
    sensor = session.get(Sensor, sensor_id)
    if sensor is None or sensor.placed_by is None:
        sensor_store.touch_sensor(session, sensor_id, now, site=site, zone=zone,
                                  placed_by="sensor")  # fmt: skip
        return True
    if (sensor.site, sensor.zone) != (site, zone):
        security_event(
            "placement_claim",
            "sensor %s claims site %r zone %r, but central placed it at site %r zone %r "
            "(set by %s); the claim is ignored (change it with 'otwatch central sensor set')",
            sensor_id,
            site,
            zone,
            sensor.site,
            sensor.zone,
            sensor.placed_by,
        )
    return False


def assign(session: Session, sensor_id: str, site: str, zone: str, now: int) -> int:
    """An administrator places a sensor (known or not yet seen); its alerts move with it.
    Returns how many alerts were updated."""
    for name, value in (("site", site), ("zone", zone)):
        if len(value) > MAX_LENGTH:
            raise PlacementError(f"{name} {value[:20]!r}… is longer than {MAX_LENGTH} characters")
    sensor_store.touch_sensor(session, sensor_id, now, site=site, zone=zone, placed_by="admin")
    result = session.execute(
        update(Alert)
        .where(Alert.sensor == sensor_id)
        .values(site=site, zone=zone)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def place_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Give alert rows about to be stored their sensor's placement (in place)."""
    if not rows:
        return
    ids = {row["sensor"] for row in rows}
    where = dict(
        (sensor_id, (site, zone))
        for sensor_id, site, zone in session.execute(
            select(Sensor.id, Sensor.site, Sensor.zone).where(Sensor.id.in_(ids))
        )
    )
    for row in rows:
        placed = where.get(row["sensor"])
        if placed is not None:
            row["site"], row["zone"] = placed
