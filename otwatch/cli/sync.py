"""``otwatch sync …``: the sensor's sync daemon (alerts and changes to central, commands back)."""

from __future__ import annotations

import logging
from dataclasses import replace

import click

from otwatch.agent.sensor import resolve_identity
from otwatch.cli.config import daemon_broker, require_config
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.metrics_options import metrics_address, metrics_options
from otwatch.cli.mqtt_options import broker_options, run_until_signal
from otwatch.metrics import SensorCollector, start_metrics
from otwatch.sync.daemon import DaemonOptions, run_sensor_daemon
from otwatch.sync.pcap_evidence import EvidencePcapProvider
from otwatch.sync.sensor_sync import SensorSync

__all__ = ["sync"]

log = logging.getLogger("otwatch.sync")


@click.group()
def sync() -> None:
    """Synchronise this sensor with central over MQTT."""


@sync.command()
@broker_options
@click.option(
    "--sensor-id", help="Sensor id [sensor.id; default: the stored one, else the hostname]."
)
@click.option(
    "--status-interval",
    type=click.FloatRange(min=0.1),
    default=30.0,
    show_default=True,
    help="Seconds between retained status/health messages.",
)
@metrics_options
@pass_cli
def run(cli: CliContext, sensor_id: str | None, status_interval: float, **params: object) -> None:
    """Run the sync daemon until SIGTERM/SIGINT.

    Sends alerts and changes from the outbox (each kept until central confirms it), applies
    central's commands, and reconnects on its own after broker or network outages. Without
    --broker the connection comes from the configuration's [sync] section. Under systemd
    (Type=notify) it reports READY, STATUS and WATCHDOG heartbeats.
    """
    cfg = require_config()
    metrics = metrics_address(cfg, "sync", params)
    broker = daemon_broker(cfg.sync, params)  # reads the password file: fails before any work
    store = cli.store()
    with store.session() as session:
        identity = resolve_identity(session, sensor_id or cfg.sensor.id or None)
    if broker.password is not None and not broker.username:
        broker = replace(broker, username=identity.sensor_id)  # the broker's user per sensor
    engine = SensorSync(
        store,
        identity,
        pcap=EvidencePcapProvider(store),
        max_clock_skew_ms=cfg.sync.max_clock_skew_ms,
    )
    log.info("sensor %s syncing with %s:%d", identity.sensor_id, broker.host, broker.port)
    options = DaemonOptions(status_interval_s=status_interval)
    server = start_metrics(metrics, SensorCollector(store, "sync"))
    try:
        run_until_signal(lambda stop: run_sensor_daemon(engine, broker, stop=stop, options=options))
    finally:
        if server is not None:
            server.stop()
    log.info("sync daemon stopped")
