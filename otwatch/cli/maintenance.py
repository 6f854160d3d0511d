"""``otwatch maintenance run``: the sensor's auto-close and retention (run it daily, e.g. from
a systemd timer; central runs the same rules on its own copy)."""

from __future__ import annotations

import click

from otwatch.agent.alerts import build
from otwatch.agent.alerts.retention import DAY_NS, run_retention
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import format_option, print_json

__all__ = ["maintenance"]


@click.group()
def maintenance() -> None:
    """Periodic housekeeping of the sensor's alerts."""


@maintenance.command("run")
@click.option(
    "--auto-close-days",
    type=click.IntRange(0, 36_500),  # 100 years: later is past what a ns timestamp holds
    default=90,
    show_default=True,
    help="Close New alerts without identical traffic for this many days (0: never).",
)
@click.option(
    "--retention-days",
    type=click.IntRange(0, 36_500),  # 100 years: later is past what a ns timestamp holds
    default=90,
    show_default=True,
    help="Delete alerts first detected this many days ago (0: keep).",
)
@format_option(choices=("table", "json"))
@pass_cli
def run(cli: CliContext, auto_close_days: int, retention_days: int, fmt: str) -> None:
    """Auto-close stale New alerts (audited as system:auto-close, synced to central) and
    delete alerts past the retention."""
    store = cli.store(purpose="run maintenance")
    result = run_retention(
        build.triage(store),
        auto_close_ns=auto_close_days * DAY_NS or None,
        retention_ns=retention_days * DAY_NS or None,
    )
    if fmt == "json":
        print_json(result.as_dict())
    else:
        click.echo(f"auto-closed {result.auto_closed} alert(s), deleted {result.deleted}")
