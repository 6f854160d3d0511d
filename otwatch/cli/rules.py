"""``otwatch rules …``: custom alert rules and exclusion rules (spec section 5).

Every change is written to the audit log and bumps ``alerts_version``, so a running agent's
alert manager (exclusions) and pipeline (custom rules) reload within a flush.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otwatch.agent.rules.custom import RuleError, validate_rule
from otwatch.agent.store.models import AuditEvent, ExclusionRule
from otwatch.agent.store.models_rules import CustomRule, CustomRuleEvent
from otwatch.agent.store.rules import custom_rule_dict
from otwatch.agent.store.state import bump_version
from otwatch.alerts.catalog import Engine, load_catalog
from otwatch.cli.central_client import ALERT_ID_MAX
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import emit_records, format_option, print_json
from otwatch.errors import OtwatchError
from otwatch.textutil import split_commas
from otwatch.timeutil import format_iso, now_ns, parse_duration_ns, parse_time_ns

__all__ = ["rules"]

_OPTION_OF = {
    "name": "--name",
    "protocol": "--protocol",
    "source": "--source",
    "destination": "--destination",
    "conditions": "--condition",
    "days": "--days",
    "time_from": "--time",
    "time_to": "--time",
    "action": "--action",
    "severity": "--severity",
    "message": "--message",
}
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_TIME_RANGE = re.compile(r"^(\d{2}:\d{2})-(\d{2}:\d{2})$")
CUSTOM_COLUMNS = ("id", "name", "enabled", "protocol", "action", "severity", "conditions")
EXCLUSION_COLUMNS = (
    "id", "name", "enabled", "alert_types", "engines", "subnets", "macs", "direction", "start",
    "end", "ticket_id",
)  # fmt: skip


def _audit(session: Session, cli: CliContext, action: str, detail: dict[str, Any]) -> None:
    session.add(
        AuditEvent(
            alert_id=None, ts_ns=now_ns(), actor=cli.actor, origin="sensor", action=action,
            detail=detail,
        )
    )  # fmt: skip
    bump_version(session)


@click.group()
def rules() -> None:
    """Custom alert rules and exclusion rules."""


# -- custom rules --------------------------------------------------------------------------


@rules.group()
def custom() -> None:
    """Custom alert rules: conditions on decoded traffic that raise an alert or an event."""


def _find(session: Session, model: Any, ref: str) -> Any:
    row = None
    if ref.isdigit():
        row = session.get(model, int(ref))
    if row is None:
        row = session.scalar(select(model).where(model.name == ref))
    if row is None:
        kind = "custom rule" if model is CustomRule else "exclusion rule"
        raise OtwatchError(f"no {kind} with id or name {ref!r}")
    return row


def _custom_row(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        spec = validate_rule(raw)
    except RuleError as exc:  # stored by an older version: show it as it is, and why
        return {**raw, "problem": str(exc), "window": None}
    row = raw | spec.as_dict()
    row["conditions"] = [c.text() for c in spec.conditions]
    row["window"] = (
        ",".join(spec.days) + (" " if spec.days and spec.time_from else "")
        + (f"{spec.time_from}-{spec.time_to} UTC" if spec.time_from else "")
    ) or None  # fmt: skip
    row["created"] = format_iso(raw.get("created_ns"))
    row["updated"] = format_iso(raw.get("updated_ns"))
    for key in ("created_ns", "updated_ns"):
        row.pop(key, None)
    return row


@custom.command("add")
@click.option("--name", required=True, help="Alert title (the alert's rule_name).")
@click.option(
    "--protocol",
    default="any",
    show_default=True,
    help="Alert protocol: any, ip, tcp, udp, icmp, arp or a tag such as modbus.",
)
@click.option("--source", multiple=True, help="Source IP, CIDR or MAC (repeat or comma-separate).")
@click.option("--destination", multiple=True, help="Destination IP, CIDR or MAC.")
@click.option(
    "--condition",
    "conditions",
    multiple=True,
    required=True,
    metavar="'FIELD OP VALUE'",
    help="AND-ed condition, e.g. 'dst_port == 502', 'modbus.function_code in 5,6', "
    "'payload contains hex:0102'. Repeat for more.",
)
@click.option("--days", multiple=True, help="Weekdays the rule applies (mon..sun); default all.")
@click.option(
    "--time",
    "time_range",
    metavar="HH:MM-HH:MM",
    help="Time of day the rule applies (UTC); may wrap midnight.",
)
@click.option("--action", type=click.Choice(["alert", "event"]), default="alert", show_default=True)
@click.option(
    "--severity", type=click.Choice(["low", "medium", "high"]), default="medium", show_default=True
)
@click.option("--message", default="", help="Message template with {field} variables.")
@click.option("--disabled", is_flag=True, help="Create the rule disabled.")
@format_option(choices=("table", "json"))
@pass_cli
def custom_add(
    cli: CliContext,
    name: str,
    protocol: str,
    source: tuple[str, ...],
    destination: tuple[str, ...],
    conditions: tuple[str, ...],
    days: tuple[str, ...],
    time_range: str | None,
    action: str,
    severity: str,
    message: str,
    disabled: bool,
    fmt: str,
) -> None:
    """Add a custom alert rule."""
    time_from = time_to = None
    if time_range:
        match = _TIME_RANGE.match(time_range.strip())
        if match is None:
            raise click.BadParameter(f"{time_range!r} is not HH:MM-HH:MM", param_hint="'--time'")
        time_from, time_to = match.groups()
    raw = {
        "name": name,
        "protocol": protocol,
        "sources": split_commas(source),
        "destinations": split_commas(destination),
        "conditions": list(conditions),
        "days": split_commas(days),
        "time_from": time_from,
        "time_to": time_to,
        "action": action,
        "severity": severity,
        "message": message,
        "enabled": not disabled,
    }
    try:
        spec = validate_rule(raw)
    except RuleError as exc:
        raise click.BadParameter(
            str(exc), param_hint=f"'{_OPTION_OF.get(exc.field.split('[')[0], exc.field)}'"
        ) from None
    stored = spec.as_dict()
    now = now_ns()
    with cli.store().session() as session:
        if session.scalar(select(CustomRule.id).where(CustomRule.name == spec.name)) is not None:
            raise OtwatchError(f"a custom rule named {spec.name!r} already exists")
        row = CustomRule(**stored, created_ns=now, updated_ns=now, actor=cli.actor)
        session.add(row)
        session.flush()
        _audit(session, cli, "custom_rule_added", {"rule_id": row.id, "rule": stored})
        result = _custom_row(custom_rule_dict(row))
    if fmt == "json":
        print_json(result)
    else:
        click.echo(f"added custom rule {result['id']}: {spec.name}")


@custom.command("list")
@format_option()
@pass_cli
def custom_list(cli: CliContext, fmt: str) -> None:
    """List custom rules."""
    with cli.store().session() as session:
        rows = [
            _custom_row(custom_rule_dict(r))
            for r in session.scalars(select(CustomRule).order_by(CustomRule.id))
        ]
    emit_records(rows, fmt, (*CUSTOM_COLUMNS, "window"), widths={"conditions": 60})


def _toggle(enabled: bool) -> Callable[[CliContext, str], None]:
    def command(cli: CliContext, rule: str) -> None:
        with cli.store().session() as session:
            row = _find(session, CustomRule, rule)
            if row.enabled == enabled:
                click.echo(f"custom rule {row.id} ({row.name}) is already "
                           f"{'enabled' if enabled else 'disabled'}")  # fmt: skip
                return
            row.enabled = enabled
            row.updated_ns = now_ns()
            action = "custom_rule_enabled" if enabled else "custom_rule_disabled"
            _audit(session, cli, action, {"rule_id": row.id, "name": row.name})
            click.echo(f"custom rule {row.id} ({row.name}) {'enabled' if enabled else 'disabled'}")

    return command


for _name, _enabled in (("enable", True), ("disable", False)):
    custom.command(_name, help=f"{_name.capitalize()} a custom rule (by id or name).")(
        click.argument("rule")(pass_cli(_toggle(_enabled)))
    )


@custom.command("delete")
@click.argument("rule")
@pass_cli
def custom_delete(cli: CliContext, rule: str) -> None:
    """Delete a custom rule (by id or name); this cannot be undone."""
    with cli.store().session() as session:
        row = _find(session, CustomRule, rule)
        rule_id, name = row.id, row.name
        session.delete(row)
        _audit(session, cli, "custom_rule_deleted", {"rule_id": rule_id, "name": name})
    click.echo(f"deleted custom rule {rule_id} ({name})")


@custom.command("events")
@click.option("--rule", "rule_ref", help="Only events of this rule (id or name).")
@click.option("--limit", type=click.IntRange(1, ALERT_ID_MAX), default=100, show_default=True)
@format_option()
@pass_cli
def custom_events(cli: CliContext, rule_ref: str | None, limit: int, fmt: str) -> None:
    """Events recorded by rules whose action is 'event', newest first."""
    with cli.store().session() as session:
        stmt = select(CustomRuleEvent).order_by(CustomRuleEvent.id.desc()).limit(limit)
        if rule_ref:
            stmt = stmt.where(CustomRuleEvent.rule_id == _find(session, CustomRule, rule_ref).id)
        rows = [
            {
                "id": e.id,
                "time": format_iso(e.ts_ns),
                "rule": e.rule_name,
                "severity": e.severity,
                "source_address": e.source_address,
                "destination_address": e.destination_address,
                "protocol": e.protocol,
                "message": e.message,
            }
            for e in session.scalars(stmt)
        ]
    emit_records(rows, fmt, ("time", "rule", "severity", "source_address",
                             "destination_address", "message"), widths={"message": 60})  # fmt: skip


# -- exclusion rules -----------------------------------------------------------------------


@rules.group()
def exclusion() -> None:
    """Exclusion rules: planned noise dropped before alerting (maintenance windows)."""


def _exclusion_row(rule: ExclusionRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "enabled": rule.enabled,
        "alert_types": list(rule.alert_types),
        "engines": list(rule.engines),
        "subnets": list(rule.subnets),
        "macs": list(rule.macs),
        "direction": rule.direction,
        "sensors": list(rule.sensors),
        "start": format_iso(rule.start_ns),
        "end": format_iso(rule.end_ns),
        "ticket_id": rule.ticket_id,
        "created": format_iso(rule.created_ns),
        "actor": rule.actor,
    }


def _bad(option: str, message: str) -> click.BadParameter:
    return click.BadParameter(message, param_hint=f"'{option}'")


@exclusion.command("add")
@click.option("--name", help="Rule name (no double quote); default Maintenance-TICKET.")
@click.option("--type", "types", multiple=True, help="Alert type id (repeat or comma-separate).")
@click.option(
    "--engine",
    "engines",
    multiple=True,
    help="Engine: policy_violation, protocol_violation, malware, anomaly, operational.",
)
@click.option("--subnet", "subnets", multiple=True, help="Device IP or CIDR subnet.")
@click.option("--mac", "macs", multiple=True, help="Device MAC address.")
@click.option(
    "--direction",
    type=click.Choice(["any", "source", "destination"]),
    default="any",
    show_default=True,
    help="Where the devices must be.",
)
@click.option("--sensor", "sensors", multiple=True, help="Sensor id the rule applies on.")
@click.option("--start", help="Start time (ISO 8601, UTC if no zone).")
@click.option("--end", help="End time (ISO 8601).")
@click.option("--ticket", help="Maintenance ticket id.")
@click.option("--ttl", help="Duration from now (e.g. 90m, 4h): a maintenance window.")
@click.option("--disabled", is_flag=True)
@format_option(choices=("table", "json"))
@pass_cli
def exclusion_add(
    cli: CliContext,
    name: str | None,
    types: tuple[str, ...],
    engines: tuple[str, ...],
    subnets: tuple[str, ...],
    macs: tuple[str, ...],
    direction: str,
    sensors: tuple[str, ...],
    start: str | None,
    end: str | None,
    ticket: str | None,
    ttl: str | None,
    disabled: bool,
    fmt: str,
) -> None:
    """Add an exclusion rule; its conditions are AND-ed, an empty one matches everything."""
    if not name:
        if not ticket:
            raise _bad("--name", "give a name (or a --ticket for a maintenance window)")
        name = f"Maintenance-{ticket}"
    name = name.strip()
    if not name or '"' in name or len(name) > 128:
        raise _bad("--name", "1-128 characters without a double quote")
    catalog = load_catalog()
    type_ids = split_commas(types)
    known = set(catalog)
    unknown = [t for t in type_ids if t not in known]
    if unknown:
        raise _bad(
            "--type", f"unknown alert type(s) {', '.join(unknown)} (see 'otwatch catalog list')"
        )
    engine_names = [e.lower() for e in split_commas(engines)]
    allowed = [e.value for e in Engine]
    if any(e not in allowed for e in engine_names):
        raise _bad("--engine", f"choose from {', '.join(allowed)}")
    networks = []
    for value in split_commas(subnets):
        try:
            networks.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            raise _bad("--subnet", f"{value!r} is not an IP address or CIDR subnet") from None
    mac_list = [m.lower().replace("-", ":") for m in split_commas(macs)]
    bad_macs = [m for m in mac_list if not _MAC.match(m)]
    if bad_macs:
        raise _bad("--mac", f"{bad_macs[0]!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    start_ns = end_ns = None
    try:
        if start:
            start_ns = parse_time_ns(start)
        if end:
            end_ns = parse_time_ns(end)
    except OtwatchError as exc:
        raise _bad("--start" if start and start_ns is None else "--end", str(exc)) from None
    if ttl:
        if end:
            raise _bad("--ttl", "give either --ttl or --end")
        try:
            duration = parse_duration_ns(ttl)
        except OtwatchError as exc:
            raise _bad("--ttl", str(exc)) from None
        if duration <= 0:
            raise _bad("--ttl", "must be positive")
        start_ns = start_ns if start_ns is not None else now_ns()
        end_ns = start_ns + duration
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise _bad("--end", "must be after --start")
    if ticket is not None and (not ticket.strip() or len(ticket) > 64):
        raise _bad("--ticket", "1-64 characters")
    row = ExclusionRule(
        name=name, enabled=not disabled, alert_types=type_ids, subnets=networks,
        start_ns=start_ns, end_ns=end_ns, created_ns=now_ns(), actor=cli.actor,
        engines=engine_names, sensors=split_commas(sensors), macs=mac_list, direction=direction,
        ticket_id=ticket,
    )  # fmt: skip
    try:
        with cli.store().session() as session:
            session.add(row)
            session.flush()
            result = _exclusion_row(row)
            _audit(session, cli, "exclusion_rule_added", {"rule_id": row.id, "rule": result})
    except IntegrityError:
        raise OtwatchError(f"an exclusion rule named {name!r} already exists") from None
    if fmt == "json":
        print_json(result)
    else:
        click.echo(f"added exclusion rule {result['id']}: {name}")


@exclusion.command("list")
@format_option()
@pass_cli
def exclusion_list(cli: CliContext, fmt: str) -> None:
    """List exclusion rules."""
    with cli.store().session() as session:
        rows = [
            _exclusion_row(r)
            for r in session.scalars(select(ExclusionRule).order_by(ExclusionRule.id))
        ]
    emit_records(rows, fmt, EXCLUSION_COLUMNS)


@exclusion.command("delete")
@click.argument("rule")
@pass_cli
def exclusion_delete(cli: CliContext, rule: str) -> None:
    """Delete an exclusion rule (by id or name)."""
    with cli.store().session() as session:
        row = _find(session, ExclusionRule, rule)
        rule_id, name = row.id, row.name
        session.execute(delete(ExclusionRule).where(ExclusionRule.id == rule_id))
        _audit(session, cli, "exclusion_rule_deleted", {"rule_id": rule_id, "name": name})
    click.echo(f"deleted exclusion rule {rule_id} ({name})")
