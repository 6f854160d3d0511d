"""This sensor's identity (id, site, zone), remembered in the store on first use."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from sqlalchemy.orm import Session

from otwatch.agent.store.state import get_state, put_state
from otwatch.errors import OtwatchError
from otwatch.sync.protocol.topics import SENSOR_ID

__all__ = ["SensorIdentity", "resolve_identity"]


@dataclass(frozen=True, slots=True)
class SensorIdentity:
    sensor_id: str
    site: str = ""
    zone: str = ""


def validate_sensor_id(sensor_id: str) -> str:
    """Sensor ids appear in MQTT topics: letters, digits, ``_ . -``, at most 64 characters."""
    if not SENSOR_ID.match(sensor_id):
        raise OtwatchError(
            f"invalid sensor id {sensor_id!r}: use 1-64 letters, digits, '_', '.' or '-' "
            "starting with a letter or digit"
        )
    return sensor_id


def resolve_identity(
    session: Session, sensor_id: str | None = None, site: str | None = None, zone: str | None = None
) -> SensorIdentity:
    """The given values win and are remembered; otherwise the stored ones; else the hostname."""
    stored_id = get_state(session, "sensor_id")
    chosen = sensor_id or stored_id or socket.gethostname().split(".")[0] or "sensor"
    chosen = validate_sensor_id(chosen)
    if chosen != stored_id:
        put_state(session, "sensor_id", chosen)
    values = {}
    for key, given in (("site", site), ("zone", zone)):
        if given is not None:
            put_state(session, key, given)
            values[key] = given
        else:
            values[key] = get_state(session, key, "")
    return SensorIdentity(chosen, values["site"], values["zone"])
