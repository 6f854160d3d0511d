"""Which alert types are on: the one place that decides it.

The spec marks some types off by default (``*``); an administrator turns them on, and may turn
default ones off, per engine in the configuration::

    [engines.arp_scan]
    enable = ["arp_address_scan_detected"]   # or ["*"]: every type of this engine
    [engines.modbus]
    disable = ["modbus_exception"]

The pipeline takes ``enable``/``disable`` out of each engine's settings (engines never see
them) and drops detections of types that are off, so every engine, OT or network, follows
the same rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from otwatch.alerts.catalog import load_catalog
from otwatch.errors import OtwatchError

__all__ = ["GATE_KEYS", "TypeGateError", "check_gate_settings", "emitted_types", "split_settings"]

GATE_KEYS = ("enable", "disable")


class TypeGateError(OtwatchError):
    """``enable``/``disable`` name a type the engine does not raise, or are not lists."""


def emitted_types(
    type_ids: frozenset[str], enable: Iterable[str] = (), disable: Iterable[str] = ()
) -> frozenset[str]:
    """The types to raise: the catalog's default-on ones, plus ``enable``d ones (``*``: all),
    minus ``disable``d ones."""
    catalog = load_catalog()
    enable, disable = set(enable), set(disable)
    if "*" in enable:
        on = set(type_ids)
    else:
        on = {t for t in type_ids if catalog[t].enabled_by_default} | (enable & type_ids)
    if "*" in disable:
        return frozenset()
    return frozenset(on - disable)


def check_gate_settings(name: str, type_ids: frozenset[str], table: Mapping[str, Any]) -> None:
    """Raise :class:`TypeGateError` naming the first bad ``enable``/``disable`` value."""
    for key in GATE_KEYS:
        value = table.get(key, ())
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise TypeGateError(f'{key} must be a list of alert type ids (or ["*"])')
        unknown = sorted(set(value) - type_ids - {"*"})
        if unknown:
            raise TypeGateError(
                f"{key}: {', '.join(map(repr, unknown))} is not a type of detector {name!r} "
                f"(its types: {', '.join(sorted(type_ids))})"
            )


def split_settings(
    engines: Iterable[Any], settings: Mapping[str, Mapping[str, Any]] | None
) -> tuple[dict[str, dict[str, Any]], frozenset[str]]:
    """``(settings without the gate keys, the enabled types of these engines)``."""
    rest: dict[str, dict[str, Any]] = {
        name: {k: v for k, v in table.items() if k not in GATE_KEYS}
        for name, table in (settings or {}).items()
    }
    enabled: set[str] = set()
    for engine in engines:
        table = (settings or {}).get(engine.name) or {}
        check_gate_settings(engine.name, engine.type_ids, table)
        enabled |= emitted_types(engine.type_ids, table.get("enable", ()), table.get("disable", ()))
    return rest, frozenset(enabled)
