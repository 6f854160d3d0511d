"""``otwatch alerts …``: list, inspect, triage and export the sensor's alerts.

With ``--central URL --token TOKEN`` (root or ``alerts`` option, or the environment) every
command works on central's alerts through its API instead (``otwatch.cli.central_client``).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from typing import Any

import click
from sqlalchemy import select

from otwatch.agent.alerts import build
from otwatch.agent.alerts.triage import ActionResult
from otwatch.agent.store.devices_query import add_device_refs
from otwatch.agent.store.models import Alert, AuditEvent
from otwatch.alerts.catalog import Engine, Severity
from otwatch.alerts.lifecycle import Action, Origin, Status
from otwatch.alerts.views import (
    GROUP_BY,
    SORT_KEYS,
    AlertFilter,
    alert_to_dict,
    alerts_to_csv,
    filtered,
    group_counts,
    sorted_query,
)
from otwatch.cli.central_client import (
    ALERT_ID_MAX,
    AlertId,
    central_id,
    central_options,
    client_from,
    pull_pcap,
    report_results,
)
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import emit_records, force_option, format_option, print_json, render_table
from otwatch.errors import OtwatchError
from otwatch.fileout import check_output, is_stdout, open_output
from otwatch.textutil import split_commas
from otwatch.timeutil import format_iso, parse_time_ns

__all__ = ["alerts"]

LIST_COLUMNS = (
    "id", "severity", "status", "name", "source_address", "destination_address", "protocol",
    "detections", "last_detection",
)  # fmt: skip
LIST_WIDTHS = {"name": 48, "source_address": 39, "destination_address": 39,
               "source_device": 39, "destination_device": 39}  # fmt: skip
SENSOR_LIST_COLUMNS = (
    "id", "severity", "status", "name", "source_device", "destination_device", "protocol",
    "detections", "last_detection",
)  # fmt: skip
"""The sensor's list shows the spec's Source/Destination device: the inventory's name for
the address where one is known, the address otherwise (``add_device_refs``)."""


def _split(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated options and comma-separated values both work: ``--status new,active``."""
    return tuple(item.lower() for item in split_commas(values))


def _choices(name: str, allowed: Sequence[str]) -> Callable[[Any, Any, Sequence[str]], tuple]:
    def check(_ctx: Any, _param: Any, values: Sequence[str]) -> tuple[str, ...]:
        out = _split(values)
        bad = [v for v in out if v not in allowed]
        if bad:
            raise click.BadParameter(f"{', '.join(bad)} (choose from {', '.join(allowed)})")
        return out

    return check


def _time(_ctx: Any, _param: Any, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time_ns(value)
    except OtwatchError as exc:
        raise click.BadParameter(str(exc)) from None


def filter_options(func: Callable) -> Callable:
    """The portal's filters as one reusable bundle of options."""
    statuses = [s.value for s in Status]
    options = [
        click.option(
            "--status",
            multiple=True,
            callback=_choices("status", statuses),
            help="new, active or closed (repeat or comma-separate).",
        ),
        click.option(
            "--severity",
            multiple=True,
            callback=_choices("severity", [s.value for s in Severity]),
            help="low, medium or high.",
        ),
        click.option(
            "--engine",
            multiple=True,
            callback=_choices("engine", [e.value for e in Engine]),
            help="policy_violation, protocol_violation, malware, anomaly, operational, custom.",
        ),
        click.option("--category", multiple=True, help="Alert category (exact name)."),
        click.option("--sensor", multiple=True, help="Sensor id."),
        click.option("--site", multiple=True, help="Site name."),
        click.option("--zone", multiple=True, help="Zone name."),
        click.option("--protocol", multiple=True, help="Alert protocol, e.g. modbus."),
        click.option("--type", "types", multiple=True, help="Alert type id from the catalog."),
        click.option("--source", help="Source IP or MAC address."),
        click.option("--destination", help="Destination IP or MAC address."),
        click.option("--search", help="Text in name, message, addresses, protocol or category."),
        click.option(
            "--since",
            callback=_time,
            help="Last detection at or after: ISO 8601 time or an age like 24h.",
        ),
        click.option(
            "--until",
            callback=_time,
            help="First detection at or before: ISO 8601 time or an age like 1h.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def build_filter(params: dict[str, Any]) -> AlertFilter:
    return AlertFilter(
        statuses=params["status"],
        severities=params["severity"],
        engines=params["engine"],
        categories=tuple(params["category"]),
        sensors=tuple(params["sensor"]),
        sites=tuple(params["site"]),
        zones=tuple(params["zone"]),
        protocols=_split(params["protocol"]),
        types=_split(params["types"]),
        source=params["source"],
        destination=params["destination"],
        search=params["search"],
        since_ns=params["since"],
        until_ns=params["until"],
    )


def _pop_filter(kwargs: dict[str, Any]) -> AlertFilter:
    keys = (
        "status",
        "severity",
        "engine",
        "category",
        "sensor",
        "site",
        "zone",
        "protocol",
        "types",
        "source",
        "destination",
        "search",
        "since",
        "until",
    )
    return build_filter({k: kwargs.pop(k) for k in keys})


@click.group()
@central_options
def alerts() -> None:
    """List, inspect, triage and export alerts (the sensor's, or central's with --central)."""


@alerts.command("list")
@filter_options
@click.option("--group-by", type=click.Choice(GROUP_BY), help="Show counts per group instead.")
@click.option(
    "--sort",
    default="-last_detection",
    show_default=True,
    help=f"Sort key ({', '.join(SORT_KEYS)}); prefix '-' for descending.",
)
@click.option(
    "--limit", type=click.IntRange(1, ALERT_ID_MAX), default=None, help="Show at most N alerts."
)
@format_option()
@pass_cli
def list_alerts(
    cli: CliContext, group_by: str | None, sort: str, limit: int | None, fmt: str, **kwargs: Any
) -> None:
    """List alerts, newest last detection first."""
    flt = _pop_filter(kwargs)
    client = client_from()
    if client is not None:
        if group_by:
            rows = [{group_by: v, "count": n} for v, n in client.groups(flt, group_by)]
            emit_records(rows, fmt, (group_by, "count"))
        else:
            columns = ("id", "sensor", *LIST_COLUMNS[1:])
            emit_records(client.alerts(flt, sort, limit), fmt, columns, widths=LIST_WIDTHS)
        return
    with cli.store(read_only=True).session() as session:
        if group_by:
            counts = group_counts(session, Alert, flt, group_by)
            rows = [{group_by: value, "count": n} for value, n in counts]
            emit_records(rows, fmt, (group_by, "count"))
            return
        stmt = sorted_query(Alert, filtered(Alert, flt), sort)
        if limit:
            stmt = stmt.limit(limit)
        rows = [alert_to_dict(a) for a in session.scalars(stmt)]
        add_device_refs(session, rows)
    emit_records(rows, fmt, SENSOR_LIST_COLUMNS, widths=LIST_WIDTHS)


def _audit_rows(session: Any, alert_id: int) -> list[dict[str, Any]]:
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.alert_id == alert_id).order_by(AuditEvent.id)
    )
    return [
        {
            "time": format_iso(e.ts_ns),
            "actor": e.actor,
            "origin": e.origin,
            "action": e.action,
            "detail": e.detail,
        }
        for e in events
    ]


@alerts.command("show")
@click.argument("alert_id", type=AlertId())
@format_option(choices=("table", "json"))
@pass_cli
def show(cli: CliContext, alert_id: int | str, fmt: str) -> None:
    """Everything about one alert: fields, remediation steps and audit history."""
    client = client_from()
    if client is not None:
        data = client.show(central_id(alert_id))
        detail_keys: tuple[str, ...] = (
            "remediation", "audit", "parameters", "seen_by", "sensors", "comments", "entities",
        )  # fmt: skip
    else:
        data = _sensor_alert(cli, _sensor_id(alert_id))
        detail_keys = ("remediation", "audit", "parameters")
    if fmt == "json":
        print_json(data)
        return
    width = max(len(k) for k in data)
    for key, value in data.items():
        if key in detail_keys:
            continue
        shown = ", ".join(map(_item, value)) if isinstance(value, list) else value
        click.echo(f"{key.replace('_', ' '):<{width}}  {'-' if shown is None else shown}")
    if data["parameters"]:
        params = ", ".join(f"{k}={v}" for k, v in data["parameters"].items())
        click.echo(f"{'parameters':<{width}}  {params}")
    click.echo("\nTake action:")
    for i, step in enumerate(data["remediation"], 1):
        click.echo(f"  {i}. {step}")
    click.echo("\nHistory:")
    rows = [{**row, "detail": _detail_text(row["detail"])} for row in data["audit"]]
    click.echo(render_table(rows, ("time", "actor", "origin", "action", "detail")))


def _item(value: Any) -> str:
    """A list item: central's tactics are ``{id, name}``."""
    if isinstance(value, dict):
        return f"{value.get('name')} ({value.get('id') or '-'})"
    return str(value)


def _sensor_id(alert_id: int | str) -> int:
    if not isinstance(alert_id, int):
        raise click.BadParameter(
            f"{alert_id} is a central alert id: add --central URL --token TOKEN", param_hint="ID"
        )
    return alert_id


def _sensor_alert(cli: CliContext, alert_id: int) -> dict[str, Any]:
    with cli.store(read_only=True).session() as session:
        alert = session.get(Alert, alert_id)
        if alert is None:
            raise click.ClickException(f"alert {alert_id} does not exist")
        data = alert_to_dict(alert)
        add_device_refs(session, [data])
        data["parameters"] = dict(alert.fields)
        data["remediation"] = list(alert.remediation)
        data["audit"] = _audit_rows(session, alert_id)
    return data


def _detail_text(detail: dict[str, Any]) -> str:
    if "text" in detail:
        return detail["text"]
    before, after = detail.get("before"), detail.get("after")
    if before and after:
        changed = [f"{k}: {before[k]} → {after[k]}" for k in after if before.get(k) != after[k]]
        return "; ".join(changed)
    return ", ".join(f"{k}={v}" for k, v in detail.items())


def _report(results: list[ActionResult], fmt: str) -> None:
    report_results([r.as_dict() for r in results], fmt)


def _act(
    cli: CliContext, ids: Sequence[int | str], action: Action, value: str | None, fmt: str
) -> None:
    client = client_from()
    if client is not None:
        wanted = list(dict.fromkeys(central_id(i) for i in ids))
        report_results(client.act(action.value, wanted, value), fmt)
        return
    sensor_ids = [_sensor_id(i) for i in ids]
    store = cli.store(purpose="change alerts")
    results = build.triage(store).apply(
        list(dict.fromkeys(sensor_ids)), action, actor=cli.actor, origin=Origin.SENSOR, value=value
    )
    _report(results, fmt)


_ids = click.argument("alert_ids", metavar="ID...", nargs=-1, required=True, type=AlertId())
_fmt = format_option(choices=("table", "json"))


@alerts.command("set-status")
@click.argument("status", type=click.Choice([s.value for s in Status], case_sensitive=False))
@_ids
@_fmt
@pass_cli
def set_status(cli: CliContext, status: str, alert_ids: tuple[int, ...], fmt: str) -> None:
    """Change the status of alerts (new, active or closed)."""
    _act(cli, alert_ids, Action.SET_STATUS, status.lower(), fmt)


@alerts.command("set-severity")
@click.argument("severity", type=click.Choice([s.value for s in Severity], case_sensitive=False))
@_ids
@_fmt
@pass_cli
def set_severity(cli: CliContext, severity: str, alert_ids: tuple[int, ...], fmt: str) -> None:
    """Change the severity of alerts (low, medium or high)."""
    _act(cli, alert_ids, Action.SET_SEVERITY, severity.lower(), fmt)


def _simple(name: str, action: Action, doc: str) -> None:
    @alerts.command(name, help=doc)
    @_ids
    @_fmt
    @pass_cli
    def command(cli: CliContext, alert_ids: tuple[int, ...], fmt: str) -> None:
        _act(cli, alert_ids, action, None, fmt)


_simple(
    "learn",
    Action.LEARN,
    "Learn alerts: close them and add their traffic to the baseline (learnable types only).",
)
_simple(
    "unlearn",
    Action.UNLEARN,
    "Unlearn alerts: remove their baseline rule and set them back to new.",
)
_simple(
    "mute",
    Action.MUTE,
    "Mute alerts: close them and stop alerting on the same traffic, without allowing it.",
)
_simple("unmute", Action.UNMUTE, "Unmute alerts: remove their mute rule and set them back to new.")


@alerts.command("comment")
@click.argument("alert_id", type=AlertId())
@click.argument("text")
@_fmt
@pass_cli
def comment(cli: CliContext, alert_id: int, text: str, fmt: str) -> None:
    """Add a comment to an alert's history."""
    if not text.strip():
        raise click.BadParameter("comment text is empty", param_hint="TEXT")
    if len(text) > 2000:
        raise click.BadParameter("comment text is longer than 2000 characters", param_hint="TEXT")
    _act(cli, [alert_id], Action.COMMENT, text, fmt)


@alerts.command("export")
@filter_options
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="CSV file to write ('-' for standard output).",
)
@force_option
@pass_cli
def export(cli: CliContext, output: str, force: bool, **kwargs: Any) -> None:
    """Export the filtered alerts as CSV (the spec's export columns)."""
    flt = _pop_filter(kwargs)
    check_output(output, force=force)
    client = client_from()
    if client is not None:
        _export_central(client, flt, output, force)
        return
    with cli.store(read_only=True).session() as session:
        rows = [
            {**alert_to_dict(a), "pcap_available": False}
            for a in session.scalars(sorted_query(Alert, filtered(Alert, flt)))
        ]
    with open_output(output, force=force, text=True) as out:
        count = alerts_to_csv(rows, out)
    if not is_stdout(output):
        click.echo(f"exported {count} alerts to {output}", err=True)


def _export_central(client: Any, flt: AlertFilter, output: str, force: bool) -> None:
    with open_output(output, force=force) as out:
        for block in client.export(flt):
            out.write(block)
    if not is_stdout(output):
        with open(output, encoding="utf-8", newline="") as written:
            count = max(0, sum(1 for _ in csv.reader(written)) - 1)
        click.echo(f"exported {count} alerts to {output}", err=True)


@alerts.command("pcap")
@click.argument("alert_id", type=AlertId())
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="PCAP file to write ('-' for standard output).",
)
@force_option
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="With --central: seconds to wait for the sensor (the request stays open after).",
)
@click.option("--fresh", is_flag=True, help="With --central: ask the sensor again, not the cache.")
@click.pass_context
def pcap(
    ctx: click.Context, alert_id: int | str, output: str, wait: float, fresh: bool, force: bool
) -> None:
    """Write an alert's PCAP. On the sensor: as ``otwatch pcap get``. With --central: ask the
    sensor that detected it through central, show progress, verify its SHA-256."""
    check_output(output, force=force)
    client = client_from()
    if client is not None:
        pull_pcap(client, central_id(alert_id), output, wait_s=wait, fresh=fresh, force=force)
        return
    from otwatch.cli.pcap import get as pcap_get

    ctx.invoke(
        pcap_get, alert_id=_sensor_id(alert_id), output=output, before=None, after=None,
        force=force,
    )  # fmt: skip
