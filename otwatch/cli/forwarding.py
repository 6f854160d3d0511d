"""``otwatch forwarding …``: alert forwarding rules to SIEMs (syslog, ECS file, webhook).

On a sensor the rules live in its store (``--data-dir``); with ``--db`` they are central's.
``forwarding run`` is the delivery daemon of a sensor (central runs it inside
``otwatch central run``). See ``docs/forwarding.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from otwatch.agent.store.forwarding import sensor_backend
from otwatch.central.store.forwarding import central_backend
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import emit_records, format_option, print_json
from otwatch.forwarding.backend import Backend
from otwatch.forwarding.repository import ForwardingError

__all__ = ["check_stored", "forwarding"]

log = logging.getLogger("otwatch.forwarding")

_db = click.option(
    "--db",
    "db_url",
    envvar="OTWATCH_CENTRAL_DB",
    help="Central's database (URL or SQLite path): central's rules instead of this sensor's. "
    "Env: OTWATCH_CENTRAL_DB.",
)
LIST_COLUMNS = (
    "id",
    "name",
    "enabled",
    "filters",
    "updates",
    "targets",
    "sent",
    "failed",
    "dropped",
    "queue",
)


@contextmanager
def _backend(cli: CliContext, db_url: str | None, *, read_only: bool = False) -> Iterator[Backend]:
    if db_url:
        from otwatch.central.store.db import open_central_store

        store = open_central_store(db_url)
        try:
            yield central_backend(store)
        finally:
            store.close()
        return
    yield sensor_backend(cli.store(read_only=read_only, purpose="change forwarding rules"))


def check_stored(cli: CliContext, db_url: str | None) -> bool:
    """``config check``'s forwarding part: one line per problem of the stored rules (the
    sensor's unless ``db_url``); False when one is an error. Quiet without a store."""
    from otwatch.agent.store.db import DB_FILENAME
    from otwatch.forwarding.check import check_stored_rules

    if not db_url and not (cli.data_dir / DB_FILENAME).exists():
        return True  # no sensor store here yet: no rules to check
    with _backend(cli, db_url, read_only=True) as b, b.store.session() as session:
        count, problems = check_stored_rules(session, b)
    where = "central's database" if db_url else f"{cli.data_dir / DB_FILENAME}"
    for problem in problems:
        click.echo(problem.line(), err=True)
    errors = sum(1 for p in problems if p.level == "error")
    if not errors:
        click.echo(f"ok: {count} forwarding rule{'s' if count != 1 else ''} in {where}")
    return errors == 0


def _split(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@click.group()
def forwarding() -> None:
    """Forward alerts to SIEMs: syslog (text, CEF, LEEF, JSON), ECS JSON file, webhook."""


@forwarding.command("list")
@_db
@format_option(choices=("table", "json", "jsonl"))
@pass_cli
def list_(cli: CliContext, db_url: str | None, fmt: str) -> None:
    """Forwarding rules with their targets and delivery counters."""
    from otwatch.forwarding.repository import list_rules

    with _backend(cli, db_url, read_only=True) as b, b.store.session() as session:
        rules = list_rules(session, b)
    if fmt != "table":
        emit_records(rules, fmt, LIST_COLUMNS)
        return
    rows = []
    for rule in rules:
        targets = rule["targets"]
        rows.append(
            {
                **rule,
                "filters": _filters_text(rule["filters"]),
                "targets": ", ".join(t["label"] for t in targets),
                **{k: sum(t[k] for t in targets) for k in ("sent", "failed", "dropped")},
                "queue": max((t.get("queue", 0) for t in targets), default=0),
            }
        )
    emit_records(rows, fmt, LIST_COLUMNS, widths={"filters": 40, "targets": 60})


def _filters_text(filters: dict[str, Any]) -> str:
    return (
        "; ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in filters.items()
        )
        or "all alerts"
    )


def _syslog_target(url: str, opts: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("udp", "tcp", "tls") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r}: use udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT",
            param_hint="--syslog",
        )
    default_port = {"udp": 514, "tcp": 601, "tls": 6514}[parts.scheme]
    target: dict[str, Any] = {
        "kind": "syslog",
        "host": parts.hostname,
        "port": parts.port or default_port,
        "transport": parts.scheme,
        "format": opts["body_format"],
    }
    if parts.scheme == "tls":
        for key in ("ca_file", "cert_file", "key_file", "passphrase_file", "server_name"):
            if opts.get(key):
                target[key] = opts[key]
    return target


def _headers(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep:
            raise click.BadParameter(f"{value!r}: use 'Name: value'", param_hint="--header")
        out[name.strip()] = text.strip()
    return out


def _targets(opts: dict[str, Any]) -> list[dict[str, Any]]:
    targets = [_syslog_target(url, opts) for url in opts["syslog"]]
    for path in opts["file"]:
        targets.append(
            {
                "kind": "file",
                "path": str(Path(path).absolute()),
                "max_bytes": opts["max_bytes"],
                "keep": opts["keep"],
            }
        )
    for url in opts["webhook"]:
        hook: dict[str, Any] = {
            "kind": "webhook",
            "url": url,
            "batch": opts["batch"],
            "headers": _headers(opts["header"]),
            "verify": opts["verify"],
        }
        for key in ("secret_file", "ca_file"):
            if opts.get(key):
                hook[key] = opts[key]
        targets.append(hook)
    return targets


def _filter_options(func: Callable) -> Callable:
    options = [
        click.option(
            "--min-severity",
            type=click.Choice(("low", "medium", "high")),
            help="Forward this severity and above.",
        ),
        click.option(
            "--engine", "engines", multiple=True, help="Engines (repeat or comma-separate)."
        ),
        click.option("--category", "categories", multiple=True, help="Alert categories (groups)."),
        click.option("--protocol", "protocols", multiple=True, help="Protocols (modbus, dnp3, …)."),
        click.option("--type", "types", multiple=True, help="Alert type ids."),
        click.option("--sensor", "sensors", multiple=True, help="Sensor ids (central)."),
        click.option("--site", "sites", multiple=True, help="Sites (central)."),
        click.option("--zone", "zones", multiple=True, help="Zones."),
        click.option(
            "--learnable/--not-learnable",
            default=None,
            help="Only learnable alerts, or only alerts that are not.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _target_options(func: Callable) -> Callable:
    options = [
        click.option(
            "--syslog",
            multiple=True,
            metavar="URL",
            help="Syslog receiver: udp://HOST:PORT, tcp://HOST:PORT (octet-counted) or "
            "tls://HOST:PORT (RFC 5425).",
        ),
        click.option(
            "--format",
            "body_format",
            default="cef",
            show_default=True,
            type=click.Choice(("text", "cef", "leef", "json")),
            help="Syslog message body.",
        ),
        click.option(
            "--ca-file",
            help="TLS syslog / HTTPS webhook: CA bundle to verify the "
            "receiver with (default: system CAs).",
        ),
        click.option("--cert-file", help="TLS syslog: client certificate (PEM)."),
        click.option("--key-file", help="TLS syslog: client key (PEM)."),
        click.option("--passphrase-file", help="TLS syslog: file holding the key's passphrase."),
        click.option(
            "--server-name",
            help="TLS syslog: name expected in the receiver's certificate (default: the host).",
        ),
        click.option(
            "--file", multiple=True, metavar="PATH", help="ECS JSON lines file, rotated by size."
        ),
        click.option(
            "--max-bytes",
            type=click.IntRange(min=4096),
            default=100 << 20,
            show_default=True,
            help="File: rotate past this size.",
        ),
        click.option(
            "--keep",
            type=click.IntRange(1, 100),
            default=5,
            show_default=True,
            help="File: rotated files kept.",
        ),
        click.option(
            "--webhook", multiple=True, metavar="URL", help="HTTPS URL to POST ECS JSON to."
        ),
        click.option(
            "--header",
            multiple=True,
            metavar="'NAME: VALUE'",
            help="Webhook header; a value '@/path' is read from that file (tokens).",
        ),
        click.option(
            "--secret-file", help="Webhook: HMAC-SHA256 key file (X-Otwatch-Signature: sha256=…)."
        ),
        click.option(
            "--batch",
            type=click.IntRange(1, 5000),
            default=100,
            show_default=True,
            help="Webhook: events per request (1: one ECS object per request).",
        ),
        click.option(
            "--verify/--no-verify",
            default=True,
            show_default=True,
            help="Webhook: verify the server's TLS certificate.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@forwarding.command()
@click.argument("name", required=False)
@_db
@_filter_options
@click.option(
    "--updates",
    is_flag=True,
    help="Also forward status/severity changes and closures of matching alerts.",
)
@click.option("--disabled", is_flag=True, help="Add the rule disabled.")
@_target_options
@click.option(
    "--from-file",
    "spec_file",
    type=click.File("r"),
    help="The whole rule as JSON (name, filters, updates, targets); see the docs.",
)
@pass_cli
def add(cli: CliContext, name: str | None, db_url: str | None, spec_file: Any, **opts: Any) -> None:
    """Add a forwarding rule; it applies to alerts raised from now on."""
    from otwatch.forwarding.repository import add_rule, parse_rule_spec

    if spec_file is not None:
        try:
            data = json.load(spec_file)
        except json.JSONDecodeError as exc:
            raise ForwardingError(f"{spec_file.name}: not JSON: {exc}") from None
        if name and isinstance(data, dict):
            data["name"] = name
    else:
        if not name:
            raise click.UsageError("give a NAME (or --from-file)")
        lists = ("engines", "categories", "protocols", "types", "sensors", "sites", "zones")
        filters: dict[str, Any] = {k: _split(opts[k]) for k in lists}
        filters.update(min_severity=opts["min_severity"], learnable=opts["learnable"])
        targets = _targets(opts)
        if not targets:
            raise click.UsageError("give at least one target: --syslog, --file or --webhook")
        data = {
            "name": name,
            "enabled": not opts["disabled"],
            "updates": opts["updates"],
            "filters": filters,
            "targets": targets,
        }
    spec = parse_rule_spec(data)
    with _backend(cli, db_url) as b, b.store.session() as session:
        rule_id = add_rule(session, b, spec, cli.actor)
    click.echo(f"forwarding rule {rule_id} {spec.name!r} added")


@forwarding.command()
@click.argument("rule")
@_db
@format_option(choices=("table", "json"))
@pass_cli
def show(cli: CliContext, rule: str, db_url: str | None, fmt: str) -> None:
    """One rule: filters, targets (secrets only as file paths), counters, last error."""
    from otwatch.forwarding.repository import find_rule, list_rules, redact

    with _backend(cli, db_url, read_only=True) as b, b.store.session() as session:
        found = find_rule(session, b, rule)
        data = next(r for r in list_rules(session, b) if r["id"] == found.id)
    data = redact(data)
    if fmt == "json":
        print_json(data)
        return
    click.echo(
        f"rule {data['id']} {data['name']!r} ({'enabled' if data['enabled'] else 'disabled'})"
    )
    click.echo(f"  filters: {_filters_text(data['filters'])}")
    click.echo(f"  updates: {'yes' if data['updates'] else 'no (new alerts only)'}")
    click.echo(f"  created: {data['created']} by {data['actor']}")
    for target in data["targets"]:
        click.echo(f"  target {target['id']}: {target['label']}")
        extra = {k: v for k, v in target["settings"].items() if v not in (None, {}, [])}
        click.echo(f"    settings: {json.dumps(extra, sort_keys=True)}")
        click.echo(
            f"    queue {target.get('queue', 0)}, sent {target['sent']}, failed "
            f"{target['failed']}, dropped {target['dropped']}, last sent "
            f"{target['last_sent_at'] or '-'}"
        )
        if target["last_error"]:
            click.echo(f"    last error ({target['last_error_at']}): {target['last_error']}")


def _toggle(enabled: bool) -> Callable:
    def command(cli: CliContext, rule: str, db_url: str | None) -> None:
        from otwatch.forwarding.repository import set_enabled

        with _backend(cli, db_url) as b, b.store.session() as session:
            changed = set_enabled(session, b, rule, enabled, cli.actor)
        state = "enabled" if enabled else "disabled"
        click.echo(f"forwarding rule {rule!r} {state}" if changed else f"{rule!r} was {state}")

    command.__doc__ = (
        "Enable a rule (it forwards alerts raised from now on)."
        if enabled
        else "Disable a rule (nothing is forwarded while disabled)."
    )
    return command


for _name, _enabled in (("enable", True), ("disable", False)):
    forwarding.command(_name)(click.argument("rule")(_db(pass_cli(_toggle(_enabled)))))


@forwarding.command()
@click.argument("rule")
@_db
@pass_cli
def remove(cli: CliContext, rule: str, db_url: str | None) -> None:
    """Remove a rule and its targets' delivery state."""
    from otwatch.forwarding.repository import remove_rule

    with _backend(cli, db_url) as b, b.store.session() as session:
        name = remove_rule(session, b, rule, cli.actor)
    click.echo(f"forwarding rule {name!r} removed")


@forwarding.command()
@click.argument("rule")
@_db
@pass_cli
def test(cli: CliContext, rule: str, db_url: str | None) -> None:
    """Send a clearly marked test alert through the rule's targets; exit 1 if one fails."""
    from otwatch.forwarding.probe import probe_targets
    from otwatch.forwarding.repository import rule_targets

    with _backend(cli, db_url, read_only=True) as b, b.store.session() as session:
        specs = rule_targets(session, b, rule)
        sensor = "central" if b.central else b.get_state(session, "sensor_id", None)
    results = probe_targets(specs, sensor or socket.gethostname().split(".")[0])
    for result in results:
        if result.ok:
            click.echo(f"ok: {result.target}: test alert sent")
        else:
            click.echo(f"failed: {result.error}")
    if not all(r.ok for r in results):
        raise click.exceptions.Exit(1)


@forwarding.command()
@_db
@click.option(
    "--poll",
    "poll_s",
    type=click.FloatRange(0.01, 60),
    default=0.25,
    show_default=True,
    help="Seconds between looks for new alerts when idle.",
)
@click.option(
    "--max-queue",
    type=click.IntRange(min=100),
    default=100_000,
    show_default=True,
    help="Changes a failing target may fall behind before the oldest are dropped.",
)
@click.option(
    "--parent-pid",
    type=int,
    default=None,
    hidden=True,
    help="Stop when this process is no longer the parent (central's forwarding child).",
)
@pass_cli
def run(
    cli: CliContext, db_url: str | None, poll_s: float, max_queue: int, parent_pid: int | None
) -> None:
    """The delivery daemon: forward alerts by the rules until SIGTERM/SIGINT."""
    from otwatch.cli.mqtt_options import run_until_signal
    from otwatch.forwarding.child import watch_parent
    from otwatch.forwarding.worker import Forwarder, ForwarderOptions
    from otwatch.sync.tasks import spawn

    logging.getLogger("otwatch").setLevel((cli.log_level or "info").upper())
    options = ForwarderOptions(poll_s=poll_s, max_queue=max_queue)
    with _backend(cli, db_url) as b:
        log.info("forwarding from the %s store", b.kind)

        async def main(stop: asyncio.Event) -> None:
            if parent_pid is not None:
                spawn(watch_parent(parent_pid, stop), name="fwd-parent")
            await Forwarder(b, options).run(stop)

        run_until_signal(main)
