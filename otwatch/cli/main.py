"""The ``otwatch`` command: the root group, shared options and error handling.

Domain errors (``OtwatchError``) become one ``error: …`` line and exit 1; usage errors exit
2; Ctrl-C aborts cleanly. Tracebacks are only shown with ``OTWATCH_DEBUG=1``.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from otwatch import __version__
from otwatch.cli.agent import agent
from otwatch.cli.alerts import alerts
from otwatch.cli.catalog import catalog
from otwatch.cli.context import DEFAULT_DATA_DIR, CliContext
from otwatch.errors import OtwatchError

__all__ = ["cli", "main"]


class OtwatchGroup(click.Group):
    """Turns domain errors raised anywhere below into one clear line."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
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
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    envvar="OTWATCH_DATA_DIR",
    help="Sensor data directory (database, PCAP ring). Env: OTWATCH_DATA_DIR.",
)
@click.pass_context
def cli(ctx: click.Context, data_dir: Path) -> None:
    """otwatch: OT/ICS network security sensor."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    state = CliContext(data_dir=data_dir)
    ctx.obj = state
    ctx.call_on_close(state.close)


cli.add_command(agent)
cli.add_command(alerts)
cli.add_command(catalog)


def main() -> None:
    try:
        cli.main(prog_name="otwatch")
    except KeyboardInterrupt:  # pragma: no cover - click turns most into Abort
        click.echo("aborted", err=True)
        sys.exit(130)
