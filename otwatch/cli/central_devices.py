"""``otwatch central devices …``: every sensor's devices as central holds them, through its
API (``--central URL --token TOKEN``): ``list`` with the API's filters, ``show`` one device,
``set`` an override (admin token), which central sends to the device's sensor."""

from __future__ import annotations

from typing import Any

import click

from otwatch.cli.central_client import CentralApiError, CentralClient, central_options, client_from
from otwatch.cli.output import emit_records, format_option, print_json
from otwatch.sync.protocol.devices import DEVICE_TYPES

__all__ = ["devices"]

COLUMNS = ("id", "sensor_id", "ip", "mac", "name", "vendor", "model", "firmware", "type",
           "purdue_level", "protocols", "learned", "last_seen")  # fmt: skip
_WIDTHS = {"name": 24, "vendor": 28, "model": 24, "protocols": 30}
SORTS = ("name", "ip", "mac", "vendor", "model", "firmware", "type", "purdue_level",
         "protocols", "first_seen", "last_seen", "sensor", "learned")  # fmt: skip
"""Central's sort keys (``otwatch.central.store.devices.SORT_KEYS``, checked by a test: the
CLI reaches central over HTTP and does not import its store)."""


def _client() -> CentralClient:
    client = client_from()
    if client is None:
        raise click.UsageError("give --central URL and --token TOKEN (or OTWATCH_CENTRAL_URL "
                               "and OTWATCH_CENTRAL_TOKEN)")  # fmt: skip
    return client


def _call(func: Any, *args: Any) -> Any:
    try:
        return func(*args)
    except CentralApiError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@central_options
def devices() -> None:
    """Every sensor's devices, through central's API."""


@devices.command("list")
@click.option("--type", "types", multiple=True, type=click.Choice(DEVICE_TYPES),
              help="Device type (repeat for several).")  # fmt: skip
@click.option("--vendor", help="Vendor name contains this (case-insensitive).")
@click.option("--protocol", "protocols", multiple=True, help="Speaks this protocol, e.g. modbus.")
@click.option("--subnet", help="Address in this subnet, e.g. 192.0.2.0/24.")
@click.option("--sensor", "sensors", multiple=True, help="Of this sensor (repeat for several).")
@click.option("--since", help="Seen at or after: ISO 8601 time or an age (24h).")
@click.option("--new", "new_only", is_flag=True, help="Only devices new since learning.")
@click.option("--search", help="Text in name, IP, MAC, vendor or model.")
@click.option("--sort", type=click.Choice(SORTS), default="ip", show_default=True)
@click.option("--desc", is_flag=True, help="Sort descending.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--offset", type=click.IntRange(min=0), default=0)
@format_option(choices=("table", "json", "csv"))
def list_(types, vendor, protocols, subnet, sensors, since, new_only, search, sort, desc,
          limit, offset, fmt) -> None:  # fmt: skip
    """List devices of every sensor (filters as the portal's)."""
    params: dict[str, Any] = {"sort": sort, "order": "desc" if desc else "asc", "limit": limit,
                              "offset": offset}  # fmt: skip
    for key, value in (("type", list(types)), ("vendor", vendor), ("protocol", list(protocols)),
                       ("subnet", subnet), ("sensor", list(sensors)), ("since", since),
                       ("search", search)):  # fmt: skip
        if value:
            params[key] = value
    if new_only:
        params["new"] = "true"
    page = _call(_client().get, "/devices", params)
    emit_records(page["items"], fmt, COLUMNS, widths=_WIDTHS)
    if fmt == "table":
        click.echo(f"({len(page['items'])} of {page['total']} devices)")


@devices.command()
@click.argument("device_id", type=click.IntRange(min=1))
@format_option(choices=("table", "json"))
def show(device_id: int, fmt: str) -> None:
    """One device by central id: facts with sources, history, services, recent alerts."""
    record = _call(_client().get, f"/devices/{device_id}")
    if fmt == "json":
        print_json(record)
        return
    for key in ("id", "sensor_id", "sensor_device_id", "ip", "mac", "name", "vendor", "model",
                "firmware", "type", "type_reason", "purdue_level", "learned", "first_seen",
                "last_seen"):  # fmt: skip
        value = record.get(key)
        click.echo(f"{key.replace('_', ' '):<17} {'-' if value is None else value}")
    pending = record.get("pending_override")
    if pending:
        click.echo(f"{'pending override':<17} {pending['set']} by {pending['by']}")
    click.echo("facts (field, value, source, seen):")
    for fact in record["facts"]:
        click.echo(f"  {fact['field']:<18} {fact['value']!s:<32} {fact['source']:<18} "
                   f"{fact['seen']}")  # fmt: skip
    click.echo("recent alerts:")
    for alert in record["recent_alerts"]:
        click.echo(f"  {alert['id']:<16} {alert['severity']:<8} {alert['status']:<8} "
                   f"{alert['name']}")  # fmt: skip


@devices.command("set")
@click.argument("device_id", type=click.IntRange(min=1))
@click.option("--name", help="The device's name ('' clears the override).")
@click.option("--type", "device_type", type=click.Choice((*DEVICE_TYPES, "")),
              help="The device's type ('' clears the override).")  # fmt: skip
@click.option("--purdue", type=click.IntRange(0, 5), help="Purdue level 0-5.")
@click.option("--clear-purdue", is_flag=True, help="Clear the Purdue level override.")
def set_(device_id: int, name, device_type, purdue, clear_purdue) -> None:
    """Override a device's name, type or Purdue level; central sends it to the sensor."""
    body: dict[str, Any] = {}
    if name is not None:
        body["name"] = name or None
    if device_type is not None:
        body["type"] = device_type or None
    if purdue is not None or clear_purdue:
        body["purdue_level"] = None if clear_purdue else purdue
    if not body:
        raise click.UsageError("give --name, --type, --purdue or --clear-purdue")
    record = _call(_client().patch, f"/devices/{device_id}", body)
    click.echo(f"device {record['id']} ({record['ip'] or record['key']} on sensor "
               f"{record['sensor_id']}): {body} sent to the sensor")  # fmt: skip
