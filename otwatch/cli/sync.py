"""``otwatch sync …``: the sensor's sync daemon (alerts and changes to central, commands back)."""

from __future__ import annotations

import logging

import click

from otwatch.agent.sensor import resolve_identity
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.mqtt_options import broker_config, broker_options, run_until_signal
from otwatch.sync.daemon import DaemonOptions, run_sensor_daemon
from otwatch.sync.engine import SensorSync
from otwatch.sync.pcap_evidence import EvidencePcapProvider

__all__ = ["sync"]

log = logging.getLogger("otwatch.sync")


@click.group()
def sync() -> None:
    """Synchronise this sensor with central over MQTT."""


@sync.command()
@broker_options
@click.option("--sensor-id", help="Sensor id (remembered; default: the stored one or hostname).")
@click.option(
    "--status-interval",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between retained status/health messages.",
)
@pass_cli
def run(cli: CliContext, sensor_id: str | None, status_interval: float, **params: object) -> None:
    """Run the sync daemon until SIGTERM/SIGINT.

    Sends alerts and changes from the outbox (each kept until central confirms it), applies
    central's commands, and reconnects on its own after broker or network outages.
    """
    broker = broker_config(params)
    store = cli.store()
    with store.session() as session:
        identity = resolve_identity(session, sensor_id)
    engine = SensorSync(store, identity, pcap=EvidencePcapProvider(store))
    log.info("sensor %s syncing with %s:%d", identity.sensor_id, broker.host, broker.port)
    options = DaemonOptions(status_interval_s=status_interval)
    run_until_signal(lambda stop: run_sensor_daemon(engine, broker, stop=stop, options=options))
