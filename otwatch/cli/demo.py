"""``otwatch demo``: the whole sensor story on embedded defaults, in about a minute.

Generates a plant capture (normal Modbus operations, then an intrusion), replays it with a
learning period, lists the alerts, and triages some of them exactly as an analyst would.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import click
from click.testing import CliRunner

from otwatch.simulate.plant import ATTACK_STEPS, PlantProfile, write_plant_capture

__all__ = ["demo"]


def _step(title: str) -> None:
    click.secho(f"\n== {title}", bold=True)


def _otwatch(data_dir: Path, *args: str, show: bool = True) -> str:
    """Run an ``otwatch`` command in-process, echo it, and return its output."""
    from otwatch.cli.main import cli

    shown = " ".join(args)
    if show:
        click.secho(f"$ otwatch --data-dir {data_dir} {shown}", fg="cyan")
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), *args])
    if show and result.output:
        click.echo(result.output.rstrip())
    if result.exit_code not in (0, 1):
        raise click.ClickException(f"'otwatch {shown}' failed: {result.output.strip()}")
    return result.output


@click.command()
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-data"),
    show_default=True,
    help="Where the generated capture and the sensor data go (recreated).",
)
def demo(workdir: Path) -> None:
    """Run the end-to-end demo: simulated plant → learning → attack → alerts → triage."""
    started = time.monotonic()
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    data_dir = workdir / "sensor"
    capture = workdir / "plant.pcap"
    profile = PlantProfile()

    _step("1. Simulating a plant: 2 HMIs polling 3 PLCs over Modbus/TCP, then an intrusion")
    packets = write_plant_capture(capture, profile)
    click.echo(
        f"wrote {capture} ({packets:,} packets); attack steps after "
        f"{profile.learning_s:.0f} s of normal traffic:"
    )
    for step in ATTACK_STEPS:
        click.echo(f"  - {step}")

    _step("2. Replaying it through the sensor, learning the first 5 minutes as the baseline")
    _otwatch(
        data_dir,
        "agent",
        "replay",
        str(capture),
        "--learning-period",
        "5m",
        "--sensor-id",
        "demo-sensor",
        "--site",
        "demo-plant",
        "--zone",
        "cell-1",
    )

    _step("3. The alerts, as the Alerts page shows them (newest first)")
    _otwatch(data_dir, "alerts", "list")
    _otwatch(data_dir, "alerts", "list", "--group-by", "engine")

    rows = json.loads(_otwatch(data_dir, "alerts", "list", "--format", "json", show=False))
    by_type = {row["type"]: row["id"] for row in rows}
    new_asset = by_type.get("new_asset_detected")
    scan = by_type.get("port_scan_detected")
    exception = by_type.get("modbus_exception")
    hmi_diagnostics = next(
        (
            row["id"]
            for row in rows
            if row["type"] == "unpermitted_usage_of_modbus_function_code"
            and row["source_address"] == "192.0.2.10"
        ),
        None,
    )

    if new_asset:
        _step("4. Details of one alert, with the steps to take")
        _otwatch(data_dir, "alerts", "show", str(new_asset))

    _step("5. Triage: investigate the scan, learn a known exception pattern, mute noise")
    if scan:
        _otwatch(data_dir, "alerts", "set-status", "active", str(scan))
        _otwatch(data_dir, "alerts", "comment", str(scan), "rogue laptop found at cabinet 3")
    if exception:
        _otwatch(data_dir, "alerts", "mute", str(exception))
    if hmi_diagnostics:
        click.echo("(the HMI's diagnostics requests are a planned maintenance job: learn them)")
        _otwatch(data_dir, "alerts", "learn", str(hmi_diagnostics))
    if exception:
        click.echo("(learning a non-learnable alert is refused with the reason:)")
        _otwatch(data_dir, "alerts", "learn", str(exception))
    _otwatch(data_dir, "alerts", "list", "--group-by", "status")

    _step("6. The same traffic again: muted traffic stays silent, open alerts count up")
    _otwatch(data_dir, "agent", "replay", str(capture))

    _step("Done")
    click.echo(
        f"finished in {time.monotonic() - started:.0f} s; sensor data is in {data_dir} "
        f"(try: otwatch --data-dir {data_dir} alerts list --status new)"
    )
