"""The sensors central knows, with their link and health (``reader`` role)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select

from otwatch.central.api.deps import Reader, Store
from otwatch.central.store.models import Sensor
from otwatch.timeutil import format_iso

__all__ = ["router"]

router = APIRouter(tags=["sensors"])


@router.get("/sensors")
def sensors(_caller: Reader, store: Store) -> list[dict[str, Any]]:
    with store.session() as s:
        return [
            {
                "sensor": x.id,
                "site": x.site,
                "zone": x.zone,
                "online": x.online,
                "last_seen": format_iso(x.last_seen_ns),
                "version": x.version,
                "health": x.health,
            }
            for x in s.scalars(select(Sensor).order_by(Sensor.id))
        ]
