"""Central's health figures: each sensor online, silent or offline, and its lag; shared by
``otwatch status --central``, central's sd_notify STATUS line and its metrics."""

from __future__ import annotations

import time
from typing import Any

from otwatch.central.store.sensors import all_sensors
from otwatch.timeutil import age_s, format_iso, parse_time_ns

__all__ = ["SILENT_AFTER_S", "central_health", "central_sensor_rows"]

SILENT_AFTER_S = 180.0
"""A sensor marked online but not heard from for this long is ``silent`` (its status
interval is 30 s; the broker's last will normally marks it offline sooner)."""


def central_sensor_rows(session: Any) -> list[dict[str, Any]]:
    """Central's sensors in the API's ``/sensors`` shape (``last_seen`` as ISO text)."""
    return [
        {
            "sensor": s.id,
            "site": s.site,
            "zone": s.zone,
            "online": s.online,
            "last_seen": format_iso(s.last_seen_ns),
            "version": s.version,
            "health": s.health or {},
        }
        for s in all_sensors(session)
    ]


def central_health(sensors: list[dict[str, Any]], now: int | None = None) -> dict[str, Any]:
    """Online/offline and lag per sensor, from ``/sensors`` rows (API or database).

    Lag is two figures: how long ago central last heard from the sensor, and how many events
    the sensor still holds for central (its outbox depth, from its last status message).
    """
    now = now or time.time_ns()
    rows = []
    for sensor in sensors:
        seen_ns = parse_time_ns(sensor["last_seen"]) if sensor.get("last_seen") else None
        age = age_s(seen_ns, now)
        state = "online" if sensor.get("online") else "offline"
        if state == "online" and age is not None and age > SILENT_AFTER_S:
            state = "silent"
        health = sensor.get("health") or {}
        rows.append(
            {
                "sensor": sensor["sensor"],
                "site": sensor.get("site", ""),
                "zone": sensor.get("zone", ""),
                "state": state,
                "last_seen": sensor.get("last_seen"),
                "last_seen_age_s": None if age is None else round(age, 1),
                "outbox_depth": health.get("outbox_depth"),
                "capture_drops": health.get("capture_drops"),
                "version": sensor.get("version", ""),
            }
        )
    counts = {s: sum(1 for r in rows if r["state"] == s) for s in ("online", "silent", "offline")}
    return {"sensors": rows, **counts}
