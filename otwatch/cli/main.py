"""The ``otwatch`` command: the root group, shared options and error handling.

Domain errors (``OtwatchError``) become one ``error: …`` line and exit 1; usage errors exit
2; Ctrl-C aborts cleanly. Tracebacks are only shown with ``OTWATCH_DEBUG=1``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy.exc import SQLAlchemyError

from otwatch import __version__
from otwatch.cli.central_client import central_options
from otwatch.cli.context import DEFAULT_DATA_DIR, CliContext
from otwatch.errors import OtwatchError
from otwatch.logsetup import LOG_FORMATS, LOG_LEVELS, configure_logging

__all__ = ["cli", "main"]


#: Command groups, imported only when used: `otwatch alerts list` need not import Scapy, the
#: capture engine or the central API. An import error is not swallowed: it fails loudly, and
#: tests/unit/cli/test_cli_commands.py imports every entry.
SUBCOMMANDS = {
    "agent": "otwatch.cli.agent:agent",
    "alerts": "otwatch.cli.alerts:alerts",
    "baseline": "otwatch.cli.baseline:baseline",
    "catalog": "otwatch.cli.catalog:catalog",
    "central": "otwatch.cli.central:central",
    "config": "otwatch.cli.config:config",
    "devices": "otwatch.cli.devices:devices",
    "demo": "otwatch.cli.demo:demo",
    "forwarding": "otwatch.cli.forwarding:forwarding",
    "maintenance": "otwatch.cli.maintenance:maintenance",
    "pcap": "otwatch.cli.pcap:pcap",
    "rules": "otwatch.cli.rules:rules",
    "status": "otwatch.cli.status:status",
    "sync": "otwatch.cli.sync:sync",
}


class OtwatchGroup(click.Group):
    """Turns domain errors raised anywhere below into one clear line; loads subcommands lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in SUBCOMMANDS:
            module_name, attr = SUBCOMMANDS[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            self.add_command(command, cmd_name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OtwatchError as exc:
            if os.environ.get("OTWATCH_DEBUG"):
                raise
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            if os.environ.get("OTWATCH_DEBUG"):
                raise
            raise click.ClickException(
                f"database error: {exc.__class__.__name__}: {getattr(exc, 'orig', exc)}"
            ) from None


@click.group(cls=OtwatchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="otwatch")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, readable=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    envvar="OTWATCH_DATA_DIR",
    help="Sensor data directory (database, PCAP ring). Env: OTWATCH_DATA_DIR.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="OTWATCH_CONFIG",
    help="Configuration file (default /etc/otwatch/otwatch.toml when it exists). "
    "Env: OTWATCH_CONFIG.",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    envvar="OTWATCH_LOG_LEVEL",
    help="Log level (default: warning; daemons: the configured [log] level).",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    envvar="OTWATCH_LOG_FORMAT",
    help="Log lines on stderr as text or JSON (default: text, or the configured [log] format).",
)
@central_options
@click.pass_context
def cli(
    ctx: click.Context,
    data_dir: Path,
    config_path: Path | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """otwatch: OT/ICS network security sensor."""
    configure_logging(log_level or "warning", log_format or "text")
    state = CliContext(
        data_dir=data_dir, config_path=config_path, log_level=log_level, log_format=log_format
    )
    ctx.obj = state
    ctx.call_on_close(state.close)


def main() -> None:
    """Console entry point: usage errors as click shows them (exit 2), domain errors as one
    ``error: …`` line (exit 1)."""
    try:
        code = cli.main(prog_name="otwatch", standalone_mode=False)
    except click.UsageError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("aborted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(141)
    sys.exit(code if isinstance(code, int) else 0)
