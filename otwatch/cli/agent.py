"""``otwatch agent …``: run the sensor pipeline (offline replay now, live capture later)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from otwatch.agent.replay import replay as run_replay
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import format_option
from otwatch.errors import OtwatchError
from otwatch.timeutil import parse_duration_ns

__all__ = ["agent"]


def duration(_ctx: Any, _param: Any, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration_ns(value)
    except OtwatchError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def agent() -> None:
    """The sensor agent: capture, detection and alerting."""


@agent.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--learning-period",
    callback=duration,
    metavar="DURATION",
    help="Learn the baseline for this much traffic time first (e.g. 10m, 2h, 14d); "
    "policy alerts stay silent meanwhile. Default: continue the stored state.",
)
@click.option("--sensor-id", help="Sensor id to record on alerts (remembered; default hostname).")
@click.option("--site", help="Site name to record on alerts (remembered).")
@click.option("--zone", help="Zone name to record on alerts (remembered).")
@format_option(choices=("table", "json"))
@pass_cli
def replay(
    cli: CliContext,
    files: tuple[str, ...],
    learning_period: int | None,
    sensor_id: str | None,
    site: str | None,
    zone: str | None,
    fmt: str,
) -> None:
    """Replay pcap/pcapng FILES in order through the detection pipeline.

    Alerts and the learned baseline are stored in the data directory, so a later replay
    (or the live agent) continues from them.
    """
    store = cli.store()
    show_progress = fmt == "table" and sys.stderr.isatty()

    def progress(path: str, packets: int) -> None:
        if show_progress:
            click.echo(f"\r{path}: {packets:,} packets…", nl=False, err=True)

    summary = run_replay(
        files,
        store,
        sensor_id=sensor_id,
        site=site,
        zone=zone,
        learning_period_ns=learning_period,
        progress=progress,
    )
    if show_progress:
        click.echo("\r\033[K", nl=False, err=True)
    if fmt == "json":
        click.echo(json.dumps(summary.as_dict()))
    else:
        rate = summary.packets / summary.seconds if summary.seconds else 0.0
        click.echo(
            f"replayed {summary.files} file(s): {summary.packets:,} packets, "
            f"{summary.bytes:,} bytes in {summary.seconds:.2f} s ({rate:,.0f} packets/s)"
        )
        click.echo(
            f"alerts: {summary.alerts_new} new, {summary.alerts_updated} updated "
            f"({summary.detections:,} detections, {summary.suppressed:,} suppressed by "
            f"learn/mute/exclusion rules); {summary.malformed:,} malformed packets"
        )
        if summary.learning_remaining_s > 0:
            click.echo(f"learning mode: {summary.learning_remaining_s:,.0f} s of traffic left")
    for problem in summary.problems:
        click.echo(f"error: {problem}", err=True)
    if summary.problems:
        sys.exit(1)
