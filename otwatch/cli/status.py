"""``otwatch status``: health of this sensor, or of every sensor as central sees them.

Sensor (the data directory): capture rate and drops per interface, alerts by status, outbox
depth and central's last acknowledgement, PCAP ring and evidence usage, broker connection
and learning mode. Central (``--central URL --token T`` through the API, or ``--db URL``):
sensors online, silent or offline, and their lag. Both: forwarding rules' queue, sent, failed
and dropped per target. The figures are ``otwatch.health``'s and ``otwatch.central.health``'s,
the same the daemons' Prometheus metrics and systemd STATUS lines show.
"""

from __future__ import annotations

from typing import Any

import click

from otwatch.agent.capture.status import format_bytes
from otwatch.agent.store.forwarding import sensor_backend
from otwatch.central.health import central_health, central_sensor_rows
from otwatch.central.store.forwarding import central_backend
from otwatch.cli.central_client import client_from
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import format_option, print_json, render_table
from otwatch.forwarding.health import forwarding_rows, forwarding_text
from otwatch.health import sensor_health

__all__ = ["status"]


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    v = int(value)
    if v >= 86400:
        return f"{v // 86400}d {v % 86400 // 3600}h"
    if v >= 3600:
        return f"{v // 3600}h {v % 3600 // 60}m"
    return f"{v // 60}m {v % 60}s" if v >= 60 else f"{v}s"


def _budget(used: int | None, budget: int | None) -> str:
    return format_bytes(used) + (f" of {format_bytes(budget)}" if budget else "")


def sensor_text(h: dict[str, Any]) -> str:
    s, cap, sync = h["sensor"], h["capture"], h["sync"]
    where = ", ".join(f"{k} {s[k]}" for k in ("site", "zone") if s[k])
    learning = (
        f"on: {_seconds(h['learning']['remaining_s'])} of traffic left"
        if h["learning"]["active"]
        else "off"
    )
    lines = [
        f"sensor    {s['id'] or '(not set yet)'}" + (f" ({where})" if where else ""),
        f"learning  {learning}",
        f"capture   {cap['state']}"
        + (f" (updated {cap['updated']}, {cap['workers']} worker(s))" if cap["updated"] else ""),
    ]
    if cap["interfaces"]:
        rows = [{"interface": name, **figures} for name, figures in cap["interfaces"].items()]
        table = render_table(
            rows,
            ("interface", "received", "rate_pps", "kernel_drops"),
            headers={"rate_pps": "RATE (PKT/S)"},
        )
        lines += ["  " + line for line in table.splitlines()]
    if cap["not_analysed"]:
        lines.append(f"          {cap['not_analysed']:,} frame(s) recorded but not analysed")
    lines += [f"          note: {note}" for note in cap["notes"]]
    alerts = h["alerts"]
    lines.append("alerts    " + ", ".join(f"{alerts[k]:,} {k}" for k in alerts))
    link = f"sync      {sync['state']}"
    if sync["broker"]:
        link += f" to {sync['broker']}" + (f" since {sync['since']}" if sync["since"] else "")
    if sync["last_error"] and sync["state"] != "connected":
        link += f" ({sync['last_error']})"
    lines.append(link)
    ack = (
        f"last ack from central {sync['last_ack']} ({_seconds(sync['last_ack_age_s'])} ago)"
        if sync["last_ack"]
        else "no ack from central yet"
    )
    lines.append(f"outbox    {h['outbox']['depth']:,} event(s) pending; {ack}")
    ring = h["ring"]
    ring_line = f"ring      {_budget(ring['bytes'], ring['budget_bytes'])} in {ring['segments']} "
    ring_line += "segment(s)" + (
        f", {ring['oldest']} .. {ring['newest']}" if ring["oldest"] else ""
    )
    if ring["dropped_frames"]:
        ring_line += f"; {ring['dropped_frames']:,} frame(s) not written"
    ev = h["evidence"]
    lines += [
        ring_line,
        f"evidence  {ev['files']} file(s), {_budget(ev['bytes'], ev['budget_bytes'])}"
        + (f"; {ev['backlog']:,} window(s) waiting to be cut" if ev["backlog"] else ""),
    ]
    lines += forwarding_text(h.get("forwarding") or [])
    return "\n".join(lines)


def central_text(h: dict[str, Any]) -> str:
    head = (
        f"sensors: {len(h['sensors'])} ({h['online']} online, {h['silent']} silent, "
        f"{h['offline']} offline)"
    )
    if not h["sensors"]:
        return "\n".join([head, *forwarding_text(h.get("forwarding") or [])])
    rows = [
        {**row, "age": _seconds(row["last_seen_age_s"]), "outbox": row["outbox_depth"]}
        for row in h["sensors"]
    ]
    columns = ("sensor", "site", "zone", "state", "last_seen", "age", "outbox", "version")
    table = render_table(rows, columns, headers={"age": "SEEN AGO"})
    return "\n".join([head, table, *forwarding_text(h.get("forwarding") or [])])


@click.command()
@click.option(
    "--db",
    "db_url",
    metavar="URL",
    help="Central's database (URL or SQLite path): show central's sensors from it directly.",
)
@format_option(choices=("table", "json"))
@pass_cli
def status(cli: CliContext, db_url: str | None, fmt: str) -> None:
    """Health of this sensor, or with --central/--db of every sensor central knows."""
    client = client_from()
    if client is not None or db_url:
        forwarding: list[dict[str, Any]] = []
        if client is not None:
            rows = client.get("/sensors")
        else:
            from otwatch.central.store.db import open_central_store

            assert db_url  # no client: the branch is taken for a database URL
            central = open_central_store(db_url)
            try:
                with central.session() as session:
                    rows = central_sensor_rows(session)
                forwarding = forwarding_rows(central_backend(central))
            finally:
                central.close()
        health = central_health(rows)
        health["forwarding"] = forwarding
        print_json(health) if fmt == "json" else click.echo(central_text(health))
        return
    store = cli.store(read_only=True)
    health = sensor_health(store)
    health["forwarding"] = forwarding_rows(sensor_backend(store))
    print_json(health) if fmt == "json" else click.echo(sensor_text(health))
