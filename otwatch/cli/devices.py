"""``otwatch devices …``: the device inventory the sensor keeps (``agent/inventory``).

``list`` filters and groups, ``show`` gives every fact with its source, the MAC/IP history,
peers and recent alerts, ``set`` records a user's name, type or Purdue level (they win over
every guess, and the running agent keeps them), ``export`` writes the inventory, ``forget``
removes a device (it comes back if it talks again).
"""

from __future__ import annotations

import ipaddress
from typing import Any

import click

from otwatch.agent.inventory.roles import DEVICE_TYPES
from otwatch.agent.store.devices import find_device, forget_device, set_overrides
from otwatch.agent.store.devices_query import (
    GROUPS,
    DeviceFilter,
    device_record,
    group_devices,
    ip_history_of_mac,
    list_devices,
    recent_alerts,
)
from otwatch.agent.store.models import AuditEvent
from otwatch.cli.alerts import _time
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import emit_records, format_option, print_json
from otwatch.timeutil import now_ns

__all__ = ["devices"]

COLUMNS = ("id", "ip", "mac", "name", "vendor", "model", "firmware", "type", "purdue_level",
           "protocols", "peers", "learned", "last_seen")  # fmt: skip
_WIDTHS = {"name": 24, "vendor": 28, "model": 24, "protocols": 30}


def _subnet(_ctx: Any, _param: Any, value: str | None) -> str | None:
    if value is not None:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a subnet like 192.0.2.0/24") from None
    return value


@click.group()
def devices() -> None:
    """The device inventory: every device the sensor sees, what it is and what it speaks."""


@devices.command("list")
@click.option("--type", "types", multiple=True, type=click.Choice(DEVICE_TYPES),
              help="Device type (repeat for several).")  # fmt: skip
@click.option("--vendor", help="Vendor name contains this (case-insensitive).")
@click.option("--protocol", "protocols", multiple=True, help="Speaks this protocol, e.g. modbus.")
@click.option("--subnet", callback=_subnet, help="Address in this subnet, e.g. 192.0.2.0/24.")
@click.option("--since", callback=_time, help="Seen at or after: ISO 8601 time or an age (24h).")
@click.option("--new", "new_only", is_flag=True, help="Only devices new since learning.")
@click.option("--search", help="Text in address, name, MAC, vendor or model.")
@click.option(
    "--group-by", type=click.Choice(GROUPS), help="Count devices per vendor/type/protocol."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many devices.")
@format_option(choices=("table", "json", "csv"))
@pass_cli
def list_(cli: CliContext, types, vendor, protocols, subnet, since, new_only, search, group_by,
          limit, fmt) -> None:  # fmt: skip
    """List devices (the newest facts the agent flushed)."""
    flt = DeviceFilter(tuple(types), vendor, tuple(protocols), subnet, since, new_only, search)
    with cli.store(read_only=True).session() as session:
        rows = list_devices(session, flt, limit)
        if group_by:
            groups = group_devices(rows, group_by)
            emit_records(groups, fmt, (group_by, "devices"))
            return
        records = [device_record(row) for row in rows]
    emit_records(records, fmt, COLUMNS, widths=_WIDTHS)


def _find(session, ref: str):  # type: ignore[no-untyped-def]
    row = find_device(session, ref)
    if row is None:
        raise click.ClickException(f"no device {ref!r} (give an id, IP or MAC address)")
    return row


@devices.command()
@click.argument("ref")
@format_option(choices=("table", "json"))
@pass_cli
def show(cli: CliContext, ref: str, fmt: str) -> None:
    """One device (by id, IP or MAC): facts with sources, MAC/IP history, peers, alerts."""
    with cli.store(read_only=True).session() as session:
        row = _find(session, ref)
        record = device_record(row, detail=True)
        if row.mac:
            record["ip_history_of_mac"] = ip_history_of_mac(session, row.mac)
        record["recent_alerts"] = recent_alerts(session, row.ip)
    if fmt == "json":
        print_json(record)
        return
    for key in ("id", "key", "ip", "mac", "vlan", "name", "vendor", "model", "firmware",
                "type", "type_reason", "purdue_level", "learned", "first_seen", "last_seen",
                "packets_in", "packets_out", "bytes_in", "bytes_out"):  # fmt: skip
        value = record[key]
        click.echo(f"{key.replace('_', ' '):<14} {'-' if value is None else value}")
    overrides = {k: v for k, v in record["overrides"].items() if v is not None}
    click.echo(f"{'overrides':<14} {overrides or '-'}")
    click.echo(f"{'protocols':<14} {', '.join(record['protocols']) or '-'}")
    click.echo(f"{'names':<14} "
               f"{', '.join(f'{n} ({s})' for n, s in record['names'].items()) or '-'}")  # fmt: skip
    click.echo("\nfacts (field, value, source, seen):")
    for fact in record["facts"] or [{"field": "-", "value": "", "source": "", "seen": ""}]:
        click.echo(f"  {fact['field']:<18} {fact['value']!s:<32} {fact['source']:<18} "
                   f"{fact['seen']}")  # fmt: skip
    click.echo("\nMAC history of this IP:")
    for mac in record["mac_history"]:
        click.echo(f"  {mac['mac']}  {mac['first_seen']} .. {mac['last_seen']}")
    if len(record.get("ip_history_of_mac", ())) > 1:
        click.echo(f"\nIP history of {row.mac}:")
        for ip in record["ip_history_of_mac"]:
            click.echo(f"  {ip['ip']:<16} {ip['first_seen']} .. {ip['last_seen']}")
    click.echo(f"\nservices: {', '.join(record['services']) or '-'}")
    click.echo(f"peers ({record['peers']}): {', '.join(record['peer_addresses'][:32]) or '-'}")
    click.echo("\nrecent alerts:")
    for alert in record["recent_alerts"] or [{"id": "-", "name": "(none)", "severity": "",
                                              "status": "", "last_detection": ""}]:  # fmt: skip
        click.echo(f"  {alert['id']!s:>6} {alert['severity']:<8} {alert['status']:<8} "
                   f"{alert['last_detection']}  {alert['name']}")  # fmt: skip


@devices.command("set")
@click.argument("ref")
@click.option("--name", help="The device's name ('' clears the override).")
@click.option("--type", "device_type", type=click.Choice((*DEVICE_TYPES, "")),
              help="The device's type ('' clears the override).")  # fmt: skip
@click.option("--purdue", type=click.IntRange(0, 5), help="Purdue level 0-5.")
@click.option("--clear-purdue", is_flag=True, help="Clear the Purdue level override.")
@pass_cli
def set_(cli: CliContext, ref: str, name, device_type, purdue, clear_purdue) -> None:
    """Override a device's name, type or Purdue level (wins over every guess)."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = name or None
    if device_type is not None:
        changes["device_type"] = device_type or None
    if purdue is not None or clear_purdue:
        changes["purdue"] = None if clear_purdue else purdue
    if not changes:
        raise click.UsageError("give --name, --type, --purdue or --clear-purdue")
    with cli.store(purpose="change device overrides").session() as session:
        row = _find(session, ref)
        change = set_overrides(session, row, now_ns=now_ns(), **changes)
        session.add(AuditEvent(alert_id=None, ts_ns=now_ns(), actor=cli.actor, origin="sensor",
                               action="device_override",
                               detail={"device": row.key, **change}))  # fmt: skip
        click.echo(f"device {row.id} ({row.key}): name {row.name or '-'}, type "
                   f"{row.device_type}, Purdue level {row.purdue_level}")  # fmt: skip


@devices.command()
@format_option(default="json", choices=("json", "csv"))
@pass_cli
def export(cli: CliContext, fmt: str) -> None:
    """Every device with its facts (JSON), or the list columns (CSV)."""
    with cli.store(read_only=True).session() as session:
        rows = list_devices(session, DeviceFilter())
        records = [device_record(row, detail=fmt == "json") for row in rows]
    emit_records(records, fmt, COLUMNS)


@devices.command()
@click.argument("ref")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def forget(cli: CliContext, ref: str, yes: bool) -> None:
    """Remove a device from the inventory (it comes back if it is seen again)."""
    with cli.store(purpose="forget devices").session() as session:
        row = _find(session, ref)
        if not yes:
            click.confirm(f"forget device {row.id} ({row.key})?", abort=True)
        key = row.key
        forget_device(session, row, now_ns())
        session.add(AuditEvent(alert_id=None, ts_ns=now_ns(), actor=cli.actor, origin="sensor",
                               action="device_forgotten", detail={"device": key}))  # fmt: skip
    click.echo(f"forgot device {key}")
