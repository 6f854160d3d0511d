"""``otwatch central …``: the central store service (ingest from sensors, commands to them)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from otwatch.cli.central_api import api_options, run_central, token
from otwatch.cli.central_devices import devices
from otwatch.cli.central_sensor import sensor
from otwatch.cli.central_users import user
from otwatch.cli.config import daemon_broker, require_config
from otwatch.cli.metrics_options import metrics_address, metrics_options
from otwatch.cli.mqtt_options import broker_options

__all__ = ["central"]

log = logging.getLogger("otwatch.central")


@click.group()
def central() -> None:
    """Central: collect alerts from every sensor and send them commands."""


@central.command()
@click.option(
    "--db",
    "db_url",
    envvar="OTWATCH_CENTRAL_DB",
    help="Database URL (sqlite:///PATH, postgresql://USER@HOST/DB) or a SQLite file path "
    "[central.db]. Env: OTWATCH_CENTRAL_DB.",
)
@broker_options
@click.option("--client-id", default="otwatch-central", show_default=True,
              help="MQTT client id (one persistent session per id).")  # fmt: skip
@click.option("--share-group", help="Shared-subscription group to spread sensors over instances.")
@click.option("--pcap-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where pulled PCAP files are written (default: beside a SQLite "
              "database, else /var/lib/otwatch-central/pcap).")  # fmt: skip
@api_options
@metrics_options
def run(
    db_url: str | None,
    client_id: str,
    share_group: str | None,
    pcap_dir: Path | None,
    **params: object,
) -> None:
    """Run central's ingest and HTTP API until SIGTERM/SIGINT.

    Options not given come from the configuration's [central] section (database, broker,
    TLS files, credentials, API listen address). Under systemd (Type=notify) it reports
    READY, STATUS and WATCHDOG heartbeats.
    """
    from otwatch.central.store.db import open_central_store
    from otwatch.metrics import CentralCollector, start_metrics

    cfg = require_config()
    metrics = metrics_address(cfg, "central", params)
    broker = daemon_broker(cfg.central, params)
    db_url = db_url or cfg.central.db
    if not params.get("listen"):
        params["listen"] = cfg.central.listen
    params["allow_remote"] = params.get("allow_remote") or cfg.central.allow_remote
    metrics_store = open_central_store(db_url) if metrics else None
    server = start_metrics(metrics, CentralCollector(metrics_store)) if metrics_store else None
    try:
        run_central(
            db_url,
            broker,
            params,
            client_id=client_id,
            share_group=share_group,
            pcap_dir=pcap_dir,
            max_clock_skew_ms=cfg.central.max_clock_skew_ms,
            max_body_bytes=cfg.central.max_request_body_bytes,
        )
    finally:
        if server is not None:
            server.stop()
        if metrics_store is not None:
            metrics_store.close()
    log.info("central stopped")


central.add_command(token)
central.add_command(sensor)
central.add_command(user)
central.add_command(devices)
