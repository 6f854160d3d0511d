"""``otwatch config …``: check and show the configuration, and the daemons' start-up gate.

Every daemon command (``agent run``, ``sync run``, ``central run``) calls
:func:`require_config` first: a bad configuration stops it with one ``error:`` line that
names each problem and exits 1, before it opens a socket or the store. ``config check`` and
``agent run`` also run the sensor's checks (the BPF filter, ``[engines]``:
:mod:`otwatch.agent.config_check`); central never imports them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
import tomli_w

from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import print_json
from otwatch.config import Config, ConfigError, load_config
from otwatch.logsetup import configure_logging

__all__ = ["config", "daemon_broker", "require_config", "to_toml"]

log = logging.getLogger(__name__)


def require_config(ctx: click.Context | None = None, *, sensor: bool = False) -> Config:
    """Load and validate the configuration for a daemon (with ``sensor`` also the sensor's
    checks: BPF filter, engines), then apply its ``[log]`` settings.

    Raises :class:`~otwatch.config.ConfigError` (an ``OtwatchError``: the root group prints
    it as one ``error:`` line and exits 1). ``--log-level``/``--log-format`` given on the
    command line (or ``OTWATCH_LOG_LEVEL``/``OTWATCH_LOG_FORMAT``) win over the file.
    """
    ctx = ctx or click.get_current_context()
    state = ctx.find_object(CliContext)
    cfg = load_config(state.config_path if state else None)
    if sensor:
        from otwatch.agent.config_check import check_sensor_config  # not in central's process

        check_sensor_config(cfg)
    level = state.log_level if state and state.log_level else cfg.log.level
    fmt = state.log_format if state and state.log_format else cfg.log.format
    daemon = ctx.parent.info_name if ctx.parent is not None else None
    configure_logging(level, fmt, service=f"otwatch-{daemon}" if daemon else "otwatch")
    log.info("configuration loaded from %s", cfg.source, extra={"config_source": cfg.source})
    return cfg


def daemon_broker(section: Any, params: dict[str, Any], default_username: str = "") -> Any:
    """The broker a daemon connects to: the command-line options when ``--broker`` (or
    ``OTWATCH_BROKER``) was given, else the configuration's ``section`` (``cfg.sync`` or
    ``cfg.central``: URL, TLS files, user, password file). Pops the options from ``params``;
    the sub-command's ``--log-level`` only applies when given (else the ``[log]`` level)."""
    from otwatch.cli.mqtt_options import broker_config
    from otwatch.sync.transport import BrokerConfig

    ctx = click.get_current_context()
    default = click.core.ParameterSource.DEFAULT
    if ctx.get_parameter_source("log_level") in (default, None):
        params["log_level"] = logging.getLevelName(logging.getLogger().level).lower()
    if ctx.get_parameter_source("broker") not in (default, None):
        return broker_config(params)
    for key in ("broker", "tls_ca", "tls_cert", "tls_key", "username", "password_file"):
        params.pop(key, None)
    logging.getLogger("otwatch").setLevel(params.pop("log_level").upper())
    return BrokerConfig.from_section(section, default_username)


def _table(name: str, values: dict[str, Any]) -> str:
    """One ``[name]`` table: set keys written by tomli-w, unset ones as comments."""
    given = tomli_w.dumps({k: v for k, v in values.items() if v is not None})
    unset = "".join(f"# {k} = (not set)\n" for k, v in values.items() if v is None)
    return f"[{name}]\n{given}{unset}\n"


def to_toml(data: dict[str, Any]) -> str:
    """The effective configuration in the file's own layout (engine tables included)."""
    tables: list[str] = []
    for section, values in data.items():
        if section == "engines":
            tables.append(_table("engines", {"disabled": values["disabled"]}))
            for engine, settings in values["settings"].items():
                tables.append(_table(f"engines.{engine}", settings))
        else:
            tables.append(_table(section, values))
    return "".join(tables).rstrip("\n") + "\n"


@click.group()
def config() -> None:
    """Check or show the configuration (--config, default /etc/otwatch/otwatch.toml)."""


@config.command("check")
@click.option(
    "--db",
    "db_url",
    envvar="OTWATCH_CENTRAL_DB",
    help="Check central's forwarding rules in this database (URL or SQLite path) instead of "
    "the sensor's (--data-dir). Env: OTWATCH_CENTRAL_DB.",
)
@pass_cli
def check(cli: CliContext, db_url: str | None) -> None:
    """Validate the configuration file and environment, and the forwarding rules in the
    store; list every problem (exit 1 on an error)."""
    from otwatch.agent.config_check import check_sensor_config
    from otwatch.cli.forwarding import check_stored

    ok = True
    try:
        cfg = check_sensor_config(load_config(cli.config_path))
    except ConfigError as exc:
        count = len(exc.problems)
        click.echo(f"{exc.source}: {count} problem{'s' if count != 1 else ''}", err=True)
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        ok = False
    else:
        click.echo(f"ok: {cfg.source} is valid")
    if not check_stored(cli, db_url) or not ok:
        sys.exit(1)


@config.command("show")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("toml", "json")),
    default="toml",
    show_default=True,
    help="Output format.",
)
@pass_cli
def show(cli: CliContext, fmt: str) -> None:
    """Print the effective configuration (file + environment + defaults), secrets redacted."""
    cfg = load_config(cli.config_path)
    data = cfg.redacted()
    if fmt == "json":
        print_json({"source": cfg.source, **data})
        return
    click.echo(f"# effective configuration: {cfg.source} (secrets redacted)\n")
    click.echo(to_toml(data), nl=False)
