"""``otwatch baseline …``: learning mode, the learned baseline and its export/import.

The baseline is the ``baseline`` table (facts learned in learning mode, kind + key) plus the
learn rules of alerts (``alert_rules`` of kind ``learn``, listed as kind ``learned_alert``).
Learning mode is the amount of traffic time left to learn (``learning_remaining_ns``); a
running agent picks up a change at its next flush. An import bumps ``baseline_version`` and
``alerts_version`` so a running agent reloads facts and learn rules.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import click
from sqlalchemy import func, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from otwatch.agent.engines.detection import dedup_key
from otwatch.agent.store.baseline import BASELINE_VERSION, load_learning_ns, save_learning_ns
from otwatch.agent.store.models import AlertRule, AuditEvent, BaselineFact
from otwatch.agent.store.state import bump_version
from otwatch.alerts.catalog import load_catalog
from otwatch.cli.agent import duration
from otwatch.cli.context import CliContext, pass_cli
from otwatch.cli.output import emit_records, force_option, format_option, print_json
from otwatch.errors import OtwatchError
from otwatch.fileout import check_output, is_stdout, open_output
from otwatch.nesting import load_json
from otwatch.timeutil import format_iso, now_ns

__all__ = ["EXPORT_FORMAT", "baseline"]

EXPORT_FORMAT = "otwatch-baseline"
EXPORT_VERSION = 1
LEARNED_ALERT = "learned_alert"
DEFAULT_PERIOD = "14d"
_MAX_IMPORT_BYTES = 512 * 1024 * 1024


class BaselineFileError(OtwatchError):
    """A baseline export file is unreadable or malformed."""


def _audit(session: Session, cli: CliContext, action: str, detail: dict[str, Any]) -> None:
    session.add(
        AuditEvent(
            alert_id=None, ts_ns=now_ns(), actor=cli.actor, origin="sensor", action=action,
            detail=detail,
        )
    )  # fmt: skip


def _seconds(ns: int) -> str:
    seconds = ns / 1e9
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


@click.group()
def baseline() -> None:
    """Learning mode and the learned baseline (devices, connections, operations)."""


@baseline.command()
@click.option("--period", callback=duration, default=DEFAULT_PERIOD, show_default=True,
              metavar="DURATION", help="Traffic time to learn for (e.g. 2h, 14d, 6w).")  # fmt: skip
@pass_cli
def start(cli: CliContext, period: int) -> None:
    """Start (or restart) learning mode: policy alerts stay silent while the baseline grows."""
    if period <= 0:
        raise click.BadParameter("must be positive", param_hint="'--period'")
    with cli.store().session() as session:
        save_learning_ns(session, period)
        _audit(session, cli, "learning_started", {"period_ns": period})
    click.echo(f"learning mode on for {_seconds(period)} of traffic")


@baseline.command()
@pass_cli
def stop(cli: CliContext) -> None:
    """End learning mode now: alerts are raised against the baseline learned so far."""
    with cli.store().session() as session:
        remaining = load_learning_ns(session)
        save_learning_ns(session, 0)
        _audit(session, cli, "learning_stopped", {"remaining_ns": remaining})
    click.echo("learning mode off" if remaining else "learning mode was already off")


@baseline.command()
@format_option(choices=("table", "json"))
@pass_cli
def status(cli: CliContext, fmt: str) -> None:
    """Learning mode, and how many facts of each kind the baseline holds."""
    with cli.store().session() as session:
        remaining = load_learning_ns(session)
        kinds = dict(
            session.execute(
                select(BaselineFact.kind, func.count()).group_by(BaselineFact.kind)
            ).all()
        )
        learned = session.scalar(
            select(func.count()).select_from(AlertRule).where(AlertRule.kind == "learn")
        )
    data = {
        "learning": remaining > 0,
        "learning_remaining_s": round(remaining / 1e9, 3),
        "facts": sum(kinds.values()),
        "kinds": kinds,
        "learned_alerts": learned,
    }
    if fmt == "json":
        print_json(data)
        return
    state = f"on, {_seconds(remaining)} of traffic left" if remaining else "off"
    click.echo(f"learning mode: {state}")
    click.echo(f"baseline: {data['facts']} facts, {learned} learned alert rules")
    for kind, count in sorted(kinds.items()):
        click.echo(f"  {kind:<24} {count}")


def _fact_rows(session: Session, kind: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if kind != LEARNED_ALERT:
        stmt = select(BaselineFact).order_by(BaselineFact.kind, BaselineFact.key)
        if kind:
            stmt = stmt.where(BaselineFact.kind == kind)
        rows += [
            {
                "kind": f.kind,
                "key": f.key,
                "first_seen": format_iso(f.first_seen_ns),
                "origin": f.origin,
                "attrs": f.attrs,
            }
            for f in session.scalars(stmt)
        ]
    if kind in (None, LEARNED_ALERT):
        rules = session.scalars(
            select(AlertRule).where(AlertRule.kind == "learn").order_by(AlertRule.id)
        )
        rows += [
            {
                "kind": LEARNED_ALERT,
                "key": f"{r.type_id} " + ", ".join(f"{k}={v}" for k, v in r.key_fields.items()),
                "first_seen": format_iso(r.created_ns),
                "origin": f"{r.origin}:{r.actor}",
                "attrs": {"alert_id": r.alert_id, "type_id": r.type_id, **r.key_fields},
            }
            for r in rules
        ]
    return rows


@baseline.command("list")
@click.option("--kind", help=f"Only facts of this kind ({LEARNED_ALERT} for learned alerts).")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N rows.")
@format_option()
@pass_cli
def list_facts(cli: CliContext, kind: str | None, limit: int | None, fmt: str) -> None:
    """List baseline facts and learned alert rules."""
    with cli.store().session() as session:
        rows = _fact_rows(session, kind)
    if limit:
        rows = rows[:limit]
    emit_records(rows, fmt, ("kind", "key", "first_seen", "origin"), widths={"key": 80})


@baseline.command("export")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="JSON file to write ('-' for standard output).")  # fmt: skip
@force_option
@pass_cli
def export(cli: CliContext, output: str, force: bool) -> None:
    """Export the baseline and the learned alert rules as JSON."""
    check_output(output, force=force)
    with cli.store().session() as session:
        facts = [
            {
                "kind": f.kind,
                "key": f.key,
                "attrs": f.attrs,
                "first_seen_ns": f.first_seen_ns,
                "last_seen_ns": f.last_seen_ns,
                "origin": f.origin,
            }
            for f in session.scalars(select(BaselineFact).order_by(BaselineFact.id))
        ]
        learned = [
            {
                "type_id": r.type_id,
                "key_fields": r.key_fields,
                "created_ns": r.created_ns,
                "actor": r.actor,
                "origin": r.origin,
            }
            for r in session.scalars(
                select(AlertRule).where(AlertRule.kind == "learn").order_by(AlertRule.id)
            )
        ]
    document = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported": format_iso(now_ns()),
        "facts": facts,
        "learn_rules": learned,
    }
    text = json.dumps(document, indent=1, sort_keys=True)
    with open_output(output, force=force, text=True) as out:
        out.write(text + "\n")
    if not is_stdout(output):
        click.echo(f"exported {len(facts)} facts and {len(learned)} learned alert rules to "
                   f"{output}", err=True)  # fmt: skip


def _read_export(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise BaselineFileError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > _MAX_IMPORT_BYTES:
        raise BaselineFileError(f"{path}: larger than {_MAX_IMPORT_BYTES // 2**20} MiB")
    try:
        document = load_json(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise BaselineFileError(f"{path}: not a baseline export: invalid JSON{where}") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise BaselineFileError(f"{path}: not a baseline export (format is not {EXPORT_FORMAT!r})")
    if document.get("version") != EXPORT_VERSION:
        raise BaselineFileError(
            f"{path}: unsupported baseline export version {document.get('version')!r}"
        )
    return document


def _check(path: str, where: str, item: Any, fields: dict[str, type | tuple[type, ...]]) -> None:
    if not isinstance(item, dict):
        raise BaselineFileError(f"{path}: {where} is not an object")
    for name, kind in fields.items():
        if name not in item:
            raise BaselineFileError(f"{path}: {where}: missing {name!r}")
        if not isinstance(item[name], kind) or isinstance(item[name], bool):
            raise BaselineFileError(f"{path}: {where}: {name!r} has the wrong type")


@baseline.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_cli
def import_(cli: CliContext, file: str) -> None:
    """Import a baseline export: facts and learned alert rules are added (never removed)."""
    document = _read_export(file)
    facts, learned = document.get("facts", []), document.get("learn_rules", [])
    if not isinstance(facts, list) or not isinstance(learned, list):
        raise BaselineFileError(f"{file}: 'facts' and 'learn_rules' must be lists")
    catalog = load_catalog()
    known_types = set(catalog)
    fact_rows, rule_rows = [], []
    now = now_ns()
    for i, item in enumerate(facts):
        _check(file, f"facts[{i}]", item, {"kind": str, "key": str})
        if not item["kind"] or len(item["kind"]) > 32 or len(item["key"]) > 255:
            raise BaselineFileError(f"{file}: facts[{i}]: kind or key is empty or too long")
        attrs = item.get("attrs") or {}
        if not isinstance(attrs, dict):
            raise BaselineFileError(f"{file}: facts[{i}]: 'attrs' must be an object")
        first = item.get("first_seen_ns")
        first = first if isinstance(first, int) and not isinstance(first, bool) else now
        last = item.get("last_seen_ns")
        last = last if isinstance(last, int) and not isinstance(last, bool) else first
        fact_rows.append(
            {
                "kind": item["kind"],
                "key": item["key"],
                "attrs": attrs,
                "first_seen_ns": first,
                "last_seen_ns": last,
                "origin": "import",
            }
        )
    for i, item in enumerate(learned):
        _check(file, f"learn_rules[{i}]", item, {"type_id": str, "key_fields": dict})
        type_id = item["type_id"]
        if type_id not in known_types:
            raise BaselineFileError(f"{file}: learn_rules[{i}]: unknown alert type {type_id!r}")
        alert_type = catalog[type_id]
        if not alert_type.learnable:
            raise BaselineFileError(f"{file}: learn_rules[{i}]: {type_id} cannot be learned")
        key_fields = {name: item["key_fields"].get(name) for name in alert_type.dedup_key}
        rule_rows.append({
            "kind": "learn",
            "type_id": type_id,
            "dedup_key": dedup_key(type_id, alert_type.dedup_key, key_fields),
            "alert_id": None,
            "key_fields": key_fields,
            "created_ns": now,
            "actor": cli.actor,
            "origin": "sensor",
        })  # fmt: skip
    with cli.store().session() as session:
        before = _counts(session)
        for start_at in range(0, len(fact_rows), 5000):
            session.execute(
                insert(BaselineFact).on_conflict_do_nothing(index_elements=["kind", "key"]),
                fact_rows[start_at : start_at + 5000],
            )
        if rule_rows:
            session.execute(
                insert(AlertRule).on_conflict_do_nothing(index_elements=["kind", "dedup_key"]),
                rule_rows,
            )
        after = _counts(session)
        added = (after[0] - before[0], after[1] - before[1])
        bump_version(session, BASELINE_VERSION)
        bump_version(session)
        _audit(session, cli, "baseline_imported",
               {"file": file, "facts_added": added[0], "learn_rules_added": added[1]})  # fmt: skip
    kinds = Counter(row["kind"] for row in fact_rows)
    click.echo(
        f"imported {added[0]} new facts ({len(fact_rows)} in the file, kinds: "
        f"{', '.join(f'{k} {n}' for k, n in sorted(kinds.items())) or 'none'}) and "
        f"{added[1]} new learned alert rules ({len(rule_rows)} in the file)"
    )


def _counts(session: Session) -> tuple[int, int]:
    facts = session.scalar(select(func.count()).select_from(BaselineFact)) or 0
    rules = (
        session.scalar(select(func.count()).select_from(AlertRule).where(AlertRule.kind == "learn"))
        or 0
    )
    return facts, rules
