"""Forwarding rules in the store: add, list, show, enable, disable, remove (audited), and
the delivery progress the worker saves."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from otwatch.errors import OtwatchError
from otwatch.forwarding.backend import Backend
from otwatch.forwarding.rules import RuleFilter
from otwatch.forwarding.source import Cursor, RuleView, head
from otwatch.forwarding.targets.base import TargetSpec, target_label
from otwatch.timeutil import format_iso, now_ns

__all__ = [
    "ForwardingError",
    "RuleSpec",
    "TargetRow",
    "add_rule",
    "enabled_targets",
    "find_rule",
    "list_rules",
    "parse_rule_spec",
    "redact",
    "remove_rule",
    "rule_targets",
    "rule_to_dict",
    "save_failure",
    "save_progress",
    "set_enabled",
    "target_spec",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:@-]{0,127}$")


class ForwardingError(OtwatchError):
    """A forwarding rule that cannot be added, found or changed."""


class RuleSpec(BaseModel):
    """A rule as the CLI, the API and ``config check`` give it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    enabled: bool = True
    filters: RuleFilter = Field(default_factory=RuleFilter)
    updates: bool = False
    targets: list[TargetSpec] = Field(min_length=1, max_length=8)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "name: 1-128 letters, digits, spaces and _ . : @ - starting with a letter or digit"
            )
        return value


_TARGET = TypeAdapter(TargetSpec)


def _one_line(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


def parse_rule_spec(data: Any) -> RuleSpec:
    try:
        return RuleSpec.model_validate(data)
    except ValidationError as exc:
        raise ForwardingError(f"invalid forwarding rule: {_one_line(exc)}") from None


def target_spec(settings: dict[str, Any]) -> Any:
    return _TARGET.validate_python(settings)


def find_rule(session: Session, b: Backend, name_or_id: str) -> Any:
    rule = session.scalar(select(b.rule).where(b.rule.name == name_or_id))
    if rule is None and name_or_id.isdigit():
        rule = session.get(b.rule, int(name_or_id))
    if rule is None:
        raise ForwardingError(f"no forwarding rule {name_or_id!r}")
    return rule


def add_rule(session: Session, b: Backend, spec: RuleSpec, actor: str) -> int:
    """Store the rule; it forwards only alerts raised from now on (spec §5)."""
    if session.scalar(select(b.rule.id).where(b.rule.name == spec.name)) is not None:
        raise ForwardingError(f"a forwarding rule named {spec.name!r} exists already")
    now = now_ns()
    b.instance(session)
    detail = spec.model_dump(mode="json")
    session.add(b.audit_row("forwarding_add", actor, {"rule": detail}, now))
    session.flush()  # the rule's own audit row is behind its cursors
    top = head(session, b)
    rule = b.rule(
        name=spec.name,
        enabled=spec.enabled,
        filters=spec.filters.model_dump(),
        updates=spec.updates,
        start_alert_id=top[1],
        created_ns=now,
        actor=actor[:128],
    )
    session.add(rule)
    session.flush()
    for position, target in enumerate(spec.targets):
        session.add(
            b.target(
                rule_id=rule.id,
                position=position,
                kind=target.kind,
                settings=target.model_dump(),
                change_cursor=top[0],
                alert_cursor=top[1],
                sent=0,
                failed=0,
                dropped=0,
            )
        )
    return int(rule.id)


def set_enabled(session: Session, b: Backend, name_or_id: str, enabled: bool, actor: str) -> bool:
    """Returns whether it changed. Enabling starts from now: what happened while the rule
    was disabled is not forwarded."""
    rule = find_rule(session, b, name_or_id)
    if rule.enabled == enabled:
        return False
    rule.enabled = enabled
    action = "forwarding_enable" if enabled else "forwarding_disable"
    session.add(b.audit_row(action, actor, {"rule": rule.name}, now_ns()))
    session.flush()
    if enabled:
        top = head(session, b)
        session.execute(
            update(b.target)
            .where(b.target.rule_id == rule.id)
            .values(change_cursor=top[0], alert_cursor=top[1])
        )
    return True


def remove_rule(session: Session, b: Backend, name_or_id: str, actor: str) -> str:
    rule = find_rule(session, b, name_or_id)
    session.execute(delete(b.target).where(b.target.rule_id == rule.id))
    session.delete(rule)
    session.add(b.audit_row("forwarding_remove", actor, {"rule": rule.name}, now_ns()))
    return rule.name


def _targets(session: Session, b: Backend, rule_ids: list[int]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {rule_id: [] for rule_id in rule_ids}
    for target in session.scalars(
        select(b.target).where(b.target.rule_id.in_(rule_ids)).order_by(b.target.position)
    ):
        out[target.rule_id].append(target)
    return out


def rule_targets(session: Session, b: Backend, name_or_id: str) -> list[Any]:
    """The rule's target specs in order (for ``forwarding test``)."""
    rule = find_rule(session, b, name_or_id)
    return [target_spec(t.settings) for t in _targets(session, b, [rule.id])[rule.id]]


def rule_to_dict(rule: Any, targets: list[Any], top: Cursor | None = None) -> dict[str, Any]:
    """JSON form; secrets appear only as the paths of their files."""
    rows = []
    for target in targets:
        row = {
            "id": target.id,
            "kind": target.kind,
            "label": target_label(target_spec(target.settings)),
            "settings": target.settings,
            "sent": target.sent,
            "failed": target.failed,
            "dropped": target.dropped,
            "last_error": target.last_error,
            "last_error_at": format_iso(target.last_error_ns),
            "last_sent_at": format_iso(target.last_sent_ns),
        }
        if top is not None:
            row["queue"] = max(0, top[0] - target.change_cursor) + max(
                0, top[1] - target.alert_cursor
            )
        rows.append(row)
    return {
        "id": rule.id,
        "name": rule.name,
        "enabled": rule.enabled,
        "filters": {k: v for k, v in (rule.filters or {}).items() if v not in (None, [])},
        "updates": rule.updates,
        "created": format_iso(rule.created_ns),
        "actor": rule.actor,
        "targets": rows,
    }


def redact(rule: dict[str, Any]) -> dict[str, Any]:
    """Header values (tokens) are shown only when they name a file (``@/path``); secrets
    are only ever file paths in the settings."""
    for target in rule["targets"]:
        headers = target["settings"].get("headers") or {}
        target["settings"]["headers"] = {
            k: v if v.startswith("@") else "(set)" for k, v in headers.items()
        }
    return rule


def list_rules(session: Session, b: Backend) -> list[dict[str, Any]]:
    rules = list(session.scalars(select(b.rule).order_by(b.rule.id)))
    targets = _targets(session, b, [r.id for r in rules])
    top = head(session, b) if rules else None
    if top is not None and not b.central:
        top = (top[0], 0)
    return [rule_to_dict(r, targets[r.id], top) for r in rules]


@dataclass(frozen=True)
class TargetRow:
    """An enabled target as the worker runs it."""

    target_id: int
    rule_name: str
    rule: RuleView
    spec: Any
    cursor: Cursor
    version: tuple[Any, ...]
    """Changes when the rule or the target's settings change: the worker restarts it."""


def enabled_targets(session: Session, b: Backend) -> list[TargetRow]:
    rules = list(session.scalars(select(b.rule).where(b.rule.enabled.is_(True))))
    targets = _targets(session, b, [r.id for r in rules])
    out = []
    for rule in rules:
        view = RuleView(
            RuleFilter.model_validate(rule.filters or {}), rule.updates, rule.start_alert_id
        )
        for target in targets[rule.id]:
            out.append(
                TargetRow(
                    target.id,
                    rule.name,
                    view,
                    target_spec(target.settings),
                    (target.change_cursor, target.alert_cursor),
                    (rule.id, rule.filters, rule.updates, target.settings),
                )
            )
    return out


def save_progress(
    session: Session,
    b: Backend,
    target_id: int,
    cursor: Cursor,
    sent: int,
    dropped: int,
    now: int,
) -> None:
    values: dict[str, Any] = {
        "change_cursor": cursor[0],
        "alert_cursor": cursor[1],
        "sent": b.target.sent + sent,
        "dropped": b.target.dropped + dropped,
    }
    if sent:
        values["last_sent_ns"] = now
    session.execute(update(b.target).where(b.target.id == target_id).values(**values))


def save_failure(session: Session, b: Backend, target_id: int, error: str, now: int) -> None:
    session.execute(
        update(b.target)
        .where(b.target.id == target_id)
        .values(failed=b.target.failed + 1, last_error=error[:512], last_error_ns=now)
    )
