"""``otwatch central sensor …``: where each sensor is (central owns site and zone)."""

from __future__ import annotations

import time

import click

from otwatch.central.store.db import open_central_store
from otwatch.cli.central_api import _db
from otwatch.cli.output import emit_records, format_option

__all__ = ["sensor"]


@click.group()
def sensor() -> None:
    """Sensors known to central and their placement (site, zone)."""


@sensor.command("set")
@click.argument("sensor_id")
@click.option("--site", required=True, help="Site the sensor is in.")
@click.option("--zone", required=True, help="Zone the sensor is in.")
@_db
def set_(sensor_id: str, site: str, zone: str, db_url: str) -> None:
    """Place a sensor (known or not yet seen) at SITE and ZONE; its alerts move with it.

    A sensor's first birth pins the site and zone it claims; later claims are ignored and
    logged. Only this command moves a sensor, and alerts are unified only within a zone."""
    from otwatch.central.placement import assign

    store = open_central_store(db_url)
    try:
        with store.session() as session:
            moved = assign(session, sensor_id, site, zone, time.time_ns())
    finally:
        store.close()
    click.echo(f"sensor {sensor_id} placed at site {site!r} zone {zone!r} ({moved} alerts)")


@sensor.command("list")
@_db
@format_option(choices=("table", "json"))
def list_(db_url: str, fmt: str) -> None:
    """Sensors with their placement and who set it (sensor: its first birth; admin)."""
    from otwatch.central.store.sensors import all_sensors

    store = open_central_store(db_url)
    try:
        with store.session() as session:
            rows = [
                {
                    "id": s.id,
                    "site": s.site,
                    "zone": s.zone,
                    "placed_by": s.placed_by or "",
                    "online": s.online,
                }
                for s in all_sensors(session)
            ]
    finally:
        store.close()
    emit_records(rows, fmt, ("id", "site", "zone", "placed_by", "online"))
