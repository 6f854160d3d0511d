"""``otwatch central …``: the central store service (ingest from sensors, commands to them)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from otwatch.cli.central_api import api_options, run_central, token
from otwatch.cli.mqtt_options import broker_config, broker_options

__all__ = ["central"]

log = logging.getLogger("otwatch.central")


@click.group()
def central() -> None:
    """Central: collect alerts from every sensor and send them commands."""


@central.command()
@click.option(
    "--db",
    "db_url",
    required=True,
    envvar="OTWATCH_CENTRAL_DB",
    help="Database URL (sqlite:///PATH, postgresql://USER@HOST/DB) or a SQLite file path. "
    "Env: OTWATCH_CENTRAL_DB.",
)
@broker_options
@click.option("--client-id", default="otwatch-central", show_default=True,
              help="MQTT client id (one persistent session per id).")  # fmt: skip
@click.option("--share-group", help="Shared-subscription group to spread sensors over instances.")
@click.option("--pcap-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where pulled PCAP files are written (default: beside a SQLite "
              "database, else /var/lib/otwatch-central/pcap).")  # fmt: skip
@api_options
def run(
    db_url: str, client_id: str, share_group: str | None, pcap_dir: Path | None, **params: object
) -> None:
    """Run central's ingest (and the HTTP API with --listen) until SIGTERM/SIGINT."""
    broker = broker_config(params)
    run_central(
        db_url, broker, params, client_id=client_id, share_group=share_group, pcap_dir=pcap_dir
    )


central.add_command(token)
