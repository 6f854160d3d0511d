"""``otwatch catalog …``: the alert types the sensor knows, and which have a detector."""

from __future__ import annotations

import click

from otwatch.agent.engines.registry import implemented_types
from otwatch.alerts.catalog import AlertType, CatalogError, Engine, load_catalog
from otwatch.cli.output import emit_records, format_option, print_json

__all__ = ["catalog"]

COLUMNS = ("id", "name", "engine", "severity", "category", "learnable", "default_on", "implemented")


def _row(alert_type: AlertType, implemented: frozenset[str]) -> dict:
    return {
        "id": alert_type.id,
        "name": alert_type.name,
        "engine": alert_type.engine.value,
        "severity": alert_type.severity.value,
        "category": alert_type.category,
        "tactics": list(alert_type.tactics),
        "learnable": alert_type.learnable,
        "mutable": alert_type.mutable,
        "default_on": alert_type.enabled_by_default,
        "aggregatable": alert_type.aggregatable,
        "dedup_key": list(alert_type.dedup_key),
        "implemented": alert_type.id in implemented,
    }


@click.group()
def catalog() -> None:
    """The alert catalog (202 types, as the spec)."""


@catalog.command("list")
@click.option("--engine", type=click.Choice([e.value for e in Engine]), help="Only this engine.")
@click.option(
    "--implemented/--not-implemented",
    default=None,
    help="Only types whose detector exists (or does not yet).",
)
@format_option()
def list_types(engine: str | None, implemented: bool | None, fmt: str) -> None:
    """List alert types with a column saying whether a detector is implemented."""
    have = implemented_types()
    rows = [_row(t, have) for t in load_catalog().values()]
    if engine:
        rows = [r for r in rows if r["engine"] == engine]
    if implemented is not None:
        rows = [r for r in rows if r["implemented"] == implemented]
    emit_records(rows, fmt, COLUMNS, widths={"name": 60, "category": 36})
    if fmt == "table":
        done = sum(r["implemented"] for r in rows)
        click.echo(f"\n{len(rows)} types, {done} with a detector", err=True)


@catalog.command("show")
@click.argument("type_id")
@format_option(choices=("table", "json"))
def show(type_id: str, fmt: str) -> None:
    """One alert type in full, with its trigger and remediation steps."""
    try:
        alert_type = load_catalog()[type_id]
    except CatalogError as exc:
        raise click.ClickException(f"{exc}; see 'otwatch catalog list'") from None
    row = _row(alert_type, implemented_types())
    row["trigger"] = alert_type.trigger
    row["remediation"] = list(alert_type.remediation)
    if fmt == "json":
        print_json(row)
        return
    for key, value in row.items():
        if key != "remediation":
            click.echo(f"{key:<13} {', '.join(value) if isinstance(value, list) else value}")
    click.echo("remediation:")
    for i, step in enumerate(row["remediation"], 1):
        click.echo(f"  {i}. {step}")
