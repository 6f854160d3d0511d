"""The broker connection options shared by ``otwatch sync run`` and ``otwatch central run``."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from otwatch.gctune import tune_for_daemon
from otwatch.secretfile import SecretFileError, check_secret_file
from otwatch.sync.transport import BrokerConfig, SyncTransportError

__all__ = ["broker_config", "broker_options", "run_until_signal"]

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def broker_options(func: Callable) -> Callable:
    options = [
        click.option(
            "--broker",
            default="mqtt://127.0.0.1:1883",
            envvar="OTWATCH_BROKER",
            help="MQTT broker URL: mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS). "
            "Env: OTWATCH_BROKER. Not given: the configuration's [sync] or [central] broker, "
            "TLS files and credentials.",
        ),
        click.option("--tls-ca", type=_FILE, help="CA certificate to verify the broker (TLS)."),
        click.option("--tls-cert", type=_FILE, help="Client certificate (TLS client auth)."),
        click.option("--tls-key", type=_FILE, help="Client private key (TLS client auth)."),
        click.option("--username", envvar="OTWATCH_MQTT_USERNAME", help="Broker user name."),
        click.option(
            "--password-file",
            type=_FILE,
            help="File holding the broker password (first line); never on the command line.",
        ),
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            default="info",
            show_default=True,
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def broker_config(params: dict[str, Any]) -> BrokerConfig:
    """A ``BrokerConfig`` from the options (pops them from ``params``)."""
    password = None
    password_file = params.pop("password_file", None)
    if password_file is not None:
        try:
            check_secret_file(password_file)
        except SecretFileError as exc:
            raise click.BadParameter(str(exc), param_hint="--password-file") from None
        try:
            password = password_file.read_text().splitlines()[0].strip()
        except (OSError, IndexError):
            raise click.BadParameter(
                f"cannot read a password from {password_file}", param_hint="--password-file"
            ) from None
    tls_cert, tls_key = params.pop("tls_cert", None), params.pop("tls_key", None)
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    try:
        cfg = BrokerConfig(
            tls_ca=params.pop("tls_ca", None),
            tls_cert=tls_cert,
            tls_key=tls_key,
            username=params.pop("username", None),
            password=password,
        ).with_url(params.pop("broker"))
    except SyncTransportError as exc:
        raise click.BadParameter(str(exc), param_hint="--broker") from None
    logging.getLogger("otwatch").setLevel(params.pop("log_level").upper())
    return cfg


def run_until_signal(main: Callable[[asyncio.Event], Coroutine[Any, Any, None]]) -> None:
    """Run ``main(stop)`` until SIGTERM or SIGINT sets ``stop`` (a daemon: the garbage
    collector is set for long running first, ``otwatch.gctune``)."""
    tune_for_daemon()

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(runner())
