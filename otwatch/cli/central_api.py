"""The HTTP API side of ``otwatch central``: ``run`` options and ``token create|list|revoke``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from otwatch.central.store.db import CentralStore, open_central_store
from otwatch.central.store.tokens import create_token, list_tokens, revoke_token
from otwatch.cli.mqtt_options import run_until_signal
from otwatch.cli.output import emit_records, format_option
from otwatch.sync.transport import BrokerConfig
from otwatch.timeutil import format_iso

__all__ = ["api_options", "run_central", "token"]

log = logging.getLogger("otwatch.central")
DEFAULT_PCAP_DIR = Path("/var/lib/otwatch-central/pcap")


def api_options(func: Callable) -> Callable:
    options = [
        click.option(
            "--listen",
            envvar="OTWATCH_CENTRAL_LISTEN",
            help="Serve the HTTP API on HOST:PORT (loopback only unless --allow-remote), "
            "e.g. 127.0.0.1:8470. Env: OTWATCH_CENTRAL_LISTEN.",
        ),
        click.option(
            "--allow-remote",
            is_flag=True,
            help="Allow --listen on a non-loopback address (prefer a TLS reverse proxy).",
        ),
        click.option(
            "--auto-close-days",
            type=click.IntRange(0, 36_500),  # 100 years: later is past what a ns timestamp holds
            default=90,
            show_default=True,
            help="Close New alerts without identical traffic for this many days (0: never).",
        ),
        click.option(
            "--retention-days",
            type=click.IntRange(0, 36_500),  # 100 years: later is past what a ns timestamp holds
            default=90,
            show_default=True,
            help="Delete alerts first detected this many days ago (0: keep).",
        ),
        click.option(
            "--maintenance-interval",
            type=click.FloatRange(min=0.1),
            default=60.0,
            show_default=True,
            help="Seconds between unification/auto-close/retention/PCAP-cache runs.",
        ),
        click.option(
            "--session-idle-minutes",
            type=click.IntRange(min=1),
            default=30,
            show_default=True,
            help="Portal sign-in sessions end after this long without use.",
        ),
        click.option(
            "--session-max-hours",
            type=click.IntRange(min=1),
            default=12,
            show_default=True,
            help="Portal sign-in sessions end this long after sign-in, however busy.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _default_pcap_dir(store: CentralStore) -> Path:
    if store.dialect == "sqlite":
        database = store.engine.url.database
        if database and database != ":memory:":
            return Path(database).resolve().parent / "pcap"
    return DEFAULT_PCAP_DIR


def run_central(
    db_url: str,
    broker: BrokerConfig,
    params: dict[str, Any],
    *,
    client_id: str,
    share_group: str | None,
    pcap_dir: Path | None,
    max_clock_skew_ms: int | None = None,
    max_body_bytes: int | None = None,
) -> None:
    """Open the store, bind the API, and run ingest + API + maintenance until a signal."""
    # Imported here: uvicorn and FastAPI cost a second of start-up every other command skips.
    from otwatch.central.api.sessions import PortalState
    from otwatch.central.maintenance import DAY_NS, MaintenanceSettings
    from otwatch.central.node import CentralNode
    from otwatch.central.pcapstore import PcapStore
    from otwatch.central.server import ServerOptions, bind, parse_listen, serve
    from otwatch.central.service import CentralService
    from otwatch.central.store.portal_sessions import SessionLimits

    listen = params.pop("listen", None)
    allow_remote = params.pop("allow_remote", False)
    address = parse_listen(listen, allow_remote=allow_remote) if listen else None
    days = {k: params.pop(k) for k in ("auto_close_days", "retention_days")}
    interval = params.pop("maintenance_interval")
    limits = SessionLimits(
        idle_ns=params.pop("session_idle_minutes") * 60 * 1_000_000_000,
        absolute_ns=params.pop("session_max_hours") * 3600 * 1_000_000_000,
    )
    settings = MaintenanceSettings(
        auto_close_ns=days["auto_close_days"] * DAY_NS or None,
        retention_ns=days["retention_days"] * DAY_NS or None,
    )
    store = open_central_store(db_url)
    sock = None
    try:
        pcaps = PcapStore(store, pcap_dir or _default_pcap_dir(store))
        skew = {} if max_clock_skew_ms is None else {"max_clock_skew_ms": max_clock_skew_ms}
        node = CentralNode(store, pcap_sink=pcaps, shared=share_group is not None, **skew)
        service = CentralService(node, broker, client_id=client_id, share_group=share_group)
        sock = bind(address) if address else None
        limit = {} if max_body_bytes is None else {"max_body_bytes": max_body_bytes}
        options = ServerOptions(
            listen=sock,
            maintenance=settings,
            maintenance_interval_s=interval,
            portal=PortalState(limits=limits),
            forwarding_db=db_url,
            **limit,
        )
        log.info("central ingesting from %s:%d", broker.host, broker.port)
        run_until_signal(lambda stop: serve(service, node, pcaps, options, stop))
    except OSError as exc:
        raise click.ClickException(f"cannot use the PCAP directory: {exc}") from None
    finally:
        if sock is not None:
            sock.close()
        store.close()


# -- tokens --------------------------------------------------------------------------------

_db = click.option(
    "--db",
    "db_url",
    required=True,
    envvar="OTWATCH_CENTRAL_DB",
    help="Central database URL or SQLite path. Env: OTWATCH_CENTRAL_DB.",
)


@click.group()
def token() -> None:
    """API tokens of the central HTTP API (reader: view and export; admin: also triage and
    PCAP)."""


@token.command("create")
@click.option("--name", required=True, help="Token name (shown as the actor in the audit log).")
@click.option(
    "--role", type=click.Choice(["reader", "admin"]), required=True, help="What it may do."
)
@_db
def create(name: str, role: str, db_url: str) -> None:
    """Create a token and print it once (only its SHA-256 is stored)."""
    store = open_central_store(db_url)
    try:
        with store.session() as session:
            secret = create_token(session, name, role)
    finally:
        store.close()
    click.echo(secret)
    if sys.stdout.isatty():
        click.echo(f"token {name!r} ({role}) created; it is not shown again", err=True)


@token.command("list")
@_db
@format_option(choices=("table", "json"))
def list_(db_url: str, fmt: str) -> None:
    """Tokens with their role, creation, last use and revocation (never the secret)."""
    store = open_central_store(db_url)
    try:
        with store.session() as session:
            rows = [
                {
                    "name": t.name,
                    "role": t.role.value,
                    "created": format_iso(t.created_ns),
                    "last_used": format_iso(t.last_used_ns),
                    "revoked": format_iso(t.revoked_ns),
                }
                for t in list_tokens(session)
            ]
    finally:
        store.close()
    emit_records(rows, fmt, ("name", "role", "created", "last_used", "revoked"))


@token.command("revoke")
@click.argument("name")
@_db
def revoke(name: str, db_url: str) -> None:
    """Revoke a token: requests with it are refused (401) from now on."""
    store = open_central_store(db_url)
    try:
        with store.session() as session:
            changed = revoke_token(session, name)
    finally:
        store.close()
    click.echo(f"token {name!r} revoked" if changed else f"token {name!r} was already revoked")
