"""Central's forwarding rules over HTTP (``admin`` role): list, show, add, enable, disable,
remove and test, the same operations as ``otwatch forwarding --db``.

Rules added here may name secret, CA and certificate files only under ``FILES_DIR`` (the
API must not turn an admin token into a way to read or write any file central can), and
may not add ``file`` targets: those are added with the CLI on central's host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from otwatch.central.api.auth import Caller
from otwatch.central.api.deps import Admin, Store
from otwatch.central.store.forwarding import central_backend
from otwatch.forwarding.backend import Backend
from otwatch.forwarding.repository import (
    ForwardingError,
    RuleSpec,
    add_rule,
    find_rule,
    list_rules,
    parse_rule_spec,
    redact,
    remove_rule,
    rule_targets,
    set_enabled,
)

__all__ = ["FILES_DIR", "router"]

FILES_DIR = Path(os.environ.get("OTWATCH_FORWARDING_FILES", "/etc/otwatch/forwarding"))
"""Where files named by API-made rules must be (secrets, CA bundles, client certificates)."""
_PATH_KEYS = ("ca_file", "cert_file", "key_file", "passphrase_file", "secret_file")

router = APIRouter(prefix="/forwarding/rules", tags=["forwarding"])


def _check_paths(spec: RuleSpec) -> None:
    root = FILES_DIR.resolve()
    for target in spec.targets:
        if target.kind == "file":
            raise ForwardingError(
                "file targets are added with 'otwatch forwarding add --db' on central's host"
            )
        paths = [getattr(target, key, None) for key in _PATH_KEYS]
        paths += [v[1:] for v in (getattr(target, "headers", None) or {}).values() if v[:1] == "@"]
        for path in filter(None, paths):
            if not Path(path).resolve().is_relative_to(root):
                raise ForwardingError(f"{path}: files of API-made rules must be under {root}")


def _not_found(exc: ForwardingError) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))


def _one(b: Backend, rule: str) -> dict[str, Any]:
    with b.store.session() as session:
        found = find_rule(session, b, rule)
        return redact(next(r for r in list_rules(session, b) if r["id"] == found.id))


@router.get("")
def rules(_caller: Admin, store: Store) -> list[dict[str, Any]]:
    b = central_backend(store)
    with b.store.session() as session:
        return [redact(r) for r in list_rules(session, b)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create(body: Annotated[dict[str, Any], Body()], caller: Admin, store: Store):
    spec = parse_rule_spec(body)
    _check_paths(spec)
    b = central_backend(store)
    try:
        with b.store.session() as session:
            add_rule(session, b, spec, caller.actor)
    except ForwardingError as exc:
        if "exists already" in str(exc):
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        raise
    return _one(b, spec.name)


@router.get("/{rule}")
def show(rule: str, _caller: Admin, store: Store) -> dict[str, Any]:
    try:
        return _one(central_backend(store), rule)
    except ForwardingError as exc:
        raise _not_found(exc) from None


def _toggle(rule: str, enabled: bool, caller: Caller, store: Store) -> dict[str, Any]:
    b = central_backend(store)
    try:
        with b.store.session() as session:
            changed = set_enabled(session, b, rule, enabled, caller.actor)
    except ForwardingError as exc:
        raise _not_found(exc) from None
    return {"rule": rule, "enabled": enabled, "changed": changed}


@router.post("/{rule}/enable")
def enable(rule: str, caller: Admin, store: Store) -> dict[str, Any]:
    return _toggle(rule, True, caller, store)


@router.post("/{rule}/disable")
def disable(rule: str, caller: Admin, store: Store) -> dict[str, Any]:
    return _toggle(rule, False, caller, store)


@router.delete("/{rule}")
def delete(rule: str, caller: Admin, store: Store) -> dict[str, Any]:
    b = central_backend(store)
    try:
        with b.store.session() as session:
            name = remove_rule(session, b, rule, caller.actor)
    except ForwardingError as exc:
        raise _not_found(exc) from None
    return {"removed": name}


@router.post("/{rule}/test")
async def test(rule: str, _caller: Admin, store: Store) -> list[dict[str, Any]]:
    """Send a clearly marked test alert through each target; reports per target."""
    from otwatch.forwarding.probe import probe_targets

    b = central_backend(store)

    def specs() -> list[Any]:
        with b.store.session() as session:
            return rule_targets(session, b, rule)

    try:
        targets = await run_in_threadpool(specs)
    except ForwardingError as exc:
        raise _not_found(exc) from None
    results = await run_in_threadpool(probe_targets, targets, "central")
    return [{"target": r.target, "ok": r.ok, "error": r.error} for r in results]
