"""``otwatch config check`` for forwarding rules: what is stored, checked as the worker will
use it, one line per problem.

Errors (the rule cannot work as stored): settings the schema refuses (a format the target
kind does not have, TLS settings without TLS, ...), a host, port or URL that is not valid
syntax, a filter naming an engine, severity, category or alert type that does not exist,
a CA, certificate, key, passphrase, secret or header file that is missing or that this
user cannot read, a file target whose directory does not exist. Warnings (it works, but
look): a secret file that other users may read or change, a group-readable secret whose
group has other members, certificate verification off, a webhook over plain HTTP to
another host, a file target's directory this user cannot write.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from otwatch.alerts.catalog import load_catalog
from otwatch.forwarding.backend import Backend
from otwatch.forwarding.rules import ENGINES, SEVERITIES
from otwatch.forwarding.targets.base import FileSpec, SyslogSpec, WebhookSpec, target_label

__all__ = ["Problem", "check_rule", "check_stored_rules"]

_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SPECS: dict[str, Any] = {"syslog": SyslogSpec, "file": FileSpec, "webhook": WebhookSpec}
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


@dataclass(frozen=True)
class Problem:
    level: str
    """``error`` or ``warning``."""
    rule: str
    where: str
    """``filters``, or ``target 2 (syslog tls://siem:6514 (cef))``."""
    message: str

    def line(self) -> str:
        return f"{self.level}: forwarding rule {self.rule!r}, {self.where}: {self.message}"


def valid_host(host: str) -> bool:
    """An IP address or an RFC 1123 host name (labels of letters, digits and hyphens)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.match(label) for label in name.split("."))


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() in _LOOPBACK_NAMES


def _file_problems(path: str, what: str, secret: bool) -> list[tuple[str, str]]:
    """(level, message) for a file the target reads."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return [("error", f"{what} {path}: no such file")]
    except OSError as exc:
        return [("error", f"{what} {path}: {exc.strerror}")]
    if not stat.S_ISREG(st.st_mode):
        return [("error", f"{what} {path}: not a regular file")]
    out: list[tuple[str, str]] = []
    if not os.access(path, os.R_OK):
        out.append(("error", f"{what} {path}: this user ({os.geteuid()}) cannot read it"))
    mode = stat.S_IMODE(st.st_mode)
    if secret and mode & (stat.S_IRWXO | stat.S_IWGRP):
        out.append(
            (
                "warning",
                f"{what} {path} holds a secret but its mode {mode:04o} lets other users "
                f"read or change it — fix: chmod 0600 (or 0640 with the daemon's group) {path}",
            )
        )
    elif secret and mode & stat.S_IRGRP:
        try:
            members = set(grp.getgrgid(st.st_gid).gr_mem)
        except KeyError:
            members = set()
        if members:
            out.append(
                (
                    "warning",
                    f"{what} {path} is readable by its group, whose members "
                    f"{', '.join(sorted(members))} can read the secret too",
                )
            )
    return out


def _syslog(spec: SyslogSpec) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not valid_host(spec.host):
        out.append(("error", f"host {spec.host!r} is not an IP address or a host name"))
    for what, path, secret in (
        ("ca_file", spec.ca_file, False),
        ("cert_file", spec.cert_file, False),
        ("key_file", spec.key_file, True),
        ("passphrase_file", spec.passphrase_file, True),
    ):
        if path:
            out += _file_problems(path, what, secret)
    return out


def _webhook(spec: WebhookSpec) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    parts = urlsplit(spec.url)
    host = parts.hostname or ""
    try:
        parts.port  # noqa: B018 (raises on a port that is not 1-65535)
    except ValueError:
        out.append(("error", f"url {spec.url!r}: the port is not a number from 1 to 65535"))
    if not valid_host(host):
        out.append(("error", f"url {spec.url!r}: {host!r} is not an IP address or a host name"))
    if any(c.isspace() for c in spec.url):
        out.append(("error", f"url {spec.url!r} contains white space"))
    if parts.scheme == "http" and host and not _loopback(host):
        message = f"url {spec.url!r}: plain HTTP to another host (alerts travel unencrypted)"
        out.append(("warning", message))
    if not spec.verify:
        out.append(("warning", "TLS certificate verification is off (verify false)"))
    if spec.secret_file:
        out += _file_problems(spec.secret_file, "secret_file", True)
    if spec.ca_file:
        out += _file_problems(spec.ca_file, "ca_file", False)
    for name, value in spec.headers.items():
        if value.startswith("@"):
            out += _file_problems(value[1:], f"header {name} file", True)
    return out


def _file(spec: FileSpec) -> list[tuple[str, str]]:
    directory = Path(spec.path).parent
    if not directory.is_dir():
        return [("error", f"path {spec.path}: directory {directory} does not exist")]
    if not os.access(directory, os.W_OK | os.X_OK):
        return [("warning", f"path {spec.path}: this user cannot write in {directory}")]
    return []


def _filters(filters: dict[str, Any]) -> list[str]:
    """What the filters name that does not exist (the schema checks their shape)."""
    catalog = load_catalog()
    known = {
        "engines": set(ENGINES),
        "categories": {t.category.lower() for t in catalog.values()},
        "types": {t.id.lower() for t in catalog.values()},
    }
    out = []
    severity = filters.get("min_severity")
    if severity is not None and severity not in SEVERITIES:
        out.append(f"min_severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    for key, names in known.items():
        for value in filters.get(key) or []:
            if str(value).strip().lower() not in names:
                what = {"engines": "engine", "categories": "category", "types": "alert type"}[key]
                hint = "otwatch catalog list" if key != "engines" else ", ".join(ENGINES)
                out.append(f"{key}: no {what} {value!r} (see {hint})")
    return out


def _schema_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
        for err in exc.errors()
    )


def check_rule(name: str, filters: Any, targets: Iterable[Any]) -> list[Problem]:
    """Every problem of one stored rule (its filters and its targets' settings)."""
    problems = [
        Problem("error", name, "filters", message)
        for message in (_filters(filters) if isinstance(filters, dict) else ["not an object"])
    ]
    targets = list(targets)
    if not targets:
        problems.append(Problem("error", name, "targets", "the rule has no target"))
    for position, settings in enumerate(targets, start=1):
        kind = settings.get("kind") if isinstance(settings, dict) else None
        spec_class = _SPECS.get(str(kind))
        if spec_class is None:
            where = f"target {position}"
            problems.append(Problem("error", name, where, f"unknown target kind {kind!r}"))
            continue
        try:
            spec = spec_class.model_validate(settings)
        except ValidationError as exc:
            where = f"target {position} ({kind})"
            problems.append(Problem("error", name, where, _schema_message(exc)))
            continue
        where = f"target {position} ({target_label(spec)})"
        found = (
            _syslog(spec)
            if isinstance(spec, SyslogSpec)
            else _webhook(spec)
            if isinstance(spec, WebhookSpec)
            else _file(spec)
        )
        problems += [Problem(level, name, where, message) for level, message in found]
    return problems


def check_stored_rules(session: Session, b: Backend) -> tuple[int, list[Problem]]:
    """(rules checked, their problems) for every rule in the store, enabled or not."""
    rules = list(session.execute(select(b.rule.id, b.rule.name, b.rule.filters)))
    targets: dict[int, list[Any]] = {rule_id: [] for rule_id, _, _ in rules}
    for rule_id, settings in session.execute(
        select(b.target.rule_id, b.target.settings).order_by(b.target.rule_id, b.target.position)
    ):
        targets.setdefault(rule_id, []).append(settings)
    problems: list[Problem] = []
    for rule_id, name, filters in rules:
        problems += check_rule(name, filters or {}, targets[rule_id])
    return len(rules), problems
