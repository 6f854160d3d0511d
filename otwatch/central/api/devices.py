"""The device inventory of every sensor: list, show one (``reader``), override (``admin``).

An override (name, type, Purdue level) is recorded on central's device at once and sent to
the device's sensor as a ``device_override`` command (``otwatch.central.commands``: pending
until acknowledged, re-sent like triage, audited with the caller's name); the device shows
it ``pending`` until the sensor's next snapshot of the device carries it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from otwatch.alerts.views import QueryError
from otwatch.central import deviceviews
from otwatch.central.api.deps import Admin, CommanderDep, Reader, Store
from otwatch.central.api.filters import split_values, time_ns
from otwatch.central.commands import CommandRefused
from otwatch.central.store import devices as device_store
from otwatch.central.store.db import CentralStore
from otwatch.sync.protocol.devices import DEVICE_TYPES, DeviceType

__all__ = ["MAX_LIMIT", "OverrideBody", "router"]

router = APIRouter(tags=["devices"])

MAX_LIMIT = 1000
DEVICE_TYPES_LOWER = tuple(t.lower() for t in DEVICE_TYPES)


class OverrideBody(BaseModel):
    """Only the keys given change; null clears an override."""

    model_config = ConfigDict(extra="forbid", strict=True)  # unknown keys, "1" for 1: 422

    name: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    type: DeviceType | None = None
    purdue_level: Annotated[int, Field(ge=0, le=5)] | None = None


def _query(
    search: str | None, type_: list[str] | None, vendor: str | None, protocol: list[str] | None,
    subnet: str | None, sensor: list[str] | None, since: str | None, new: bool | None,
) -> device_store.DeviceQuery:  # fmt: skip
    if subnet:
        try:
            device_store.ip_range(subnet)
        except ValueError:
            raise QueryError(
                f"invalid subnet {subnet[:64]!r}: use CIDR like 192.0.2.0/24"
            ) from None
    return device_store.DeviceQuery(
        search=search or None,
        types=_types(type_),
        vendor=vendor or None,
        protocols=tuple(p.lower() for p in split_values(protocol)),
        subnet=subnet or None,
        sensors=split_values(sensor),
        since_ns=time_ns(since),
        new_only=bool(new),
    )


def _types(values: list[str] | None) -> tuple[str, ...]:
    """The device types named (any case); an unknown one is a 400 with the choices."""
    by_lower = dict(zip(DEVICE_TYPES_LOWER, DEVICE_TYPES, strict=True))
    return tuple(by_lower[v] for v in split_values(values, DEVICE_TYPES_LOWER, "type"))


@router.get("/devices")
def list_devices(
    _caller: Reader,
    store: Store,
    search: Annotated[
        str | None, Query(max_length=200, description="Text in name, IP, MAC, vendor, model")
    ] = None,
    type_: Annotated[
        list[str] | None, Query(alias="type", description=", ".join(DEVICE_TYPES))
    ] = None,
    vendor: Annotated[str | None, Query(max_length=200, description="Text in the vendor")] = None,
    protocol: Annotated[list[str] | None, Query(description="modbus, s7comm, ...")] = None,
    subnet: Annotated[str | None, Query(max_length=64, description="CIDR of the IP")] = None,
    sensor: Annotated[list[str] | None, Query()] = None,
    since: Annotated[
        str | None, Query(description="Last seen at or after (ISO 8601 or an age like 24h)")
    ] = None,
    new: Annotated[bool | None, Query(description="Only devices not learned (new)")] = None,
    sort: Annotated[str, Query(description=", ".join(device_store.SORT_KEYS))] = "ip",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Devices of every sensor, filtered and sorted; page with limit/offset."""
    if sort not in device_store.SORT_KEYS:
        raise QueryError(
            f"cannot sort by {sort[:40]!r}; choose one of {', '.join(device_store.SORT_KEYS)}"
        )
    q = _query(search, type_, vendor, protocol, subnet, sensor, since, new)
    with store.session() as s:
        rows, total = device_store.list_devices(
            s, q, sort=sort, descending=order == "desc", limit=limit, offset=offset
        )
        items = deviceviews.device_records(s, rows)
    return {"total": total, "items": items, "limit": limit, "offset": offset}


@router.get("/devices/{device_id}")
def show_device(device_id: int, _caller: Reader, store: Store) -> dict[str, Any]:
    """Everything about one device: facts with source and time, names, MAC history,
    services, peers, role evidence, its recent alerts, a pending central override."""
    with store.session() as s:
        row = device_store.get_device(s, device_id)
        if row is None:
            raise HTTPException(404, f"device {device_id} does not exist")
        return deviceviews.device_details(s, row)


def _target(store: CentralStore, device_id: int) -> tuple[str, int] | None:
    with store.session() as s:
        row = device_store.get_device(s, device_id)
        return None if row is None else (row.sensor, row.device_id)


def _details(store: CentralStore, device_id: int) -> dict[str, Any]:
    with store.session() as s:
        row = device_store.get_device(s, device_id)
        if row is None:  # forgotten meanwhile
            raise HTTPException(404, f"device {device_id} does not exist")
        return deviceviews.device_details(s, row)


@router.patch("/devices/{device_id}")
async def override_device(
    device_id: int, body: OverrideBody, caller: Admin, store: Store, commander: CommanderDep
) -> dict[str, Any]:
    """Set or clear (null) a device's name, type or Purdue level: applied centrally at once,
    sent to the device's sensor, audited. Returns the device."""
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise HTTPException(400, "nothing to change: give name, type or purdue_level")
    target = await run_in_threadpool(_target, store, device_id)
    if target is None:
        raise HTTPException(404, f"device {device_id} does not exist")
    sensor_id, sensor_device_id = target
    try:
        await commander.issue_command(
            sensor_id, "device_override", actor=caller.actor, device_id=sensor_device_id,
            overrides=changes,
        )  # fmt: skip
    except CommandRefused as exc:
        raise HTTPException(409, str(exc)) from None
    return await run_in_threadpool(_details, store, device_id)
