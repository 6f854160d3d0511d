"""``[engines]`` in the configuration: names, ``enable``/``disable`` of alert types, and each
engine's thresholds checked against its ``settings_class`` and its own ``check_settings``,
without starting any engine."""

from __future__ import annotations

import dataclasses
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from otwatch.config_problems import FIX, describe, problem_key
from otwatch.errors import OtwatchError

__all__ = ["check_engines"]


def _engines() -> dict[str, Any]:
    from otwatch.agent.engines.registry import ENGINES

    return {engine.name: engine for engine in ENGINES}


@cache
def _engine_models() -> dict[str, type[BaseModel]]:
    """A pydantic model per engine, from its ``settings_class``: types checked, unknown keys
    named (an engine without one accepts any table; ``check_settings`` judges it)."""
    models: dict[str, type[BaseModel]] = {}
    for name, engine in _engines().items():
        settings_cls = engine.settings_class
        fields: dict[str, Any] = {}
        if settings_cls is None or not dataclasses.is_dataclass(settings_cls):
            models[name] = create_model(f"{name}_settings", __config__=ConfigDict(extra="allow"))
            continue
        hints = typing.get_type_hints(settings_cls)
        for f in dataclasses.fields(settings_cls):
            if f.default is not dataclasses.MISSING:
                fields[f.name] = (hints[f.name], f.default)
            elif f.default_factory is not dataclasses.MISSING:
                fields[f.name] = (hints[f.name], Field(default_factory=f.default_factory))
        try:
            model = create_model(
                f"{name}_settings", __config__=ConfigDict(extra="forbid"), **fields
            )
        except Exception:  # an engine setting pydantic cannot describe: accept it unchecked
            model = create_model(f"{name}_settings", __config__=ConfigDict(extra="allow"))
        models[name] = model
    return models


def _engine_accepts(name: str, table: dict[str, Any]) -> str | None:
    """The engine's own checks (positive numbers, lists, IOC files that exist and parse),
    without starting it: a configuration that passes the check also starts the engine."""
    try:
        _engines()[name].check_settings(table)
    except (OtwatchError, TypeError, ValueError) as exc:
        return str(exc)
    return None


def _gate_accepts(name: str, table: dict[str, Any]) -> str | None:
    """``enable``/``disable`` (the alert types turned on or off, ``engines/gate.py``)."""
    from otwatch.agent.engines.gate import TypeGateError, check_gate_settings

    try:
        check_gate_settings(name, _engines()[name].type_ids, table)
    except TypeGateError as exc:
        return str(exc)
    return None


def check_engines(raw: Any, problems: list[str], where: dict[tuple[str, ...], str]) -> Any:
    """Validate ``[engines]``; returns the EnginesSection input, problems appended."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"engines: {raw!r} is not a table{FIX}write it as [engines]")
        return {}
    models = _engine_models()
    known = sorted(models)
    disabled = raw.get("disabled", [])
    if not isinstance(disabled, list | tuple) or not all(isinstance(d, str) for d in disabled):
        problems.append(
            f"{problem_key(('engines', 'disabled'), where)}: {disabled!r} is not a list of engine "
            f'names{FIX}write e.g. disabled = ["port_scan"]'
        )
        disabled = []
    for name in disabled:
        if name not in models:
            problems.append(
                f"{problem_key(('engines', 'disabled'), where)}: no engine named {name!r}{FIX}"
                f"use one of {', '.join(known)}"
            )
    settings: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if name == "disabled":
            continue
        if name not in models:
            problems.append(
                f"engines.{name}: no engine named {name!r}{FIX}use one of {', '.join(known)}"
            )
            continue
        if not isinstance(table, dict):
            problems.append(
                f"engines.{name}: {table!r} is not a table{FIX}write it as [engines.{name}]"
            )
            continue
        gate_problem = _gate_accepts(name, table)
        if gate_problem:
            problems.append(
                f"engines.{name}: {gate_problem}{FIX}list type ids from `otwatch catalog list`"
            )
            continue
        thresholds = {k: v for k, v in table.items() if k not in ("enable", "disable")}
        try:
            models[name].model_validate(thresholds)
        except ValidationError as exc:
            problems.extend(describe(exc, models[name], ("engines", name), where))
            continue
        engine_problem = _engine_accepts(name, thresholds)
        if engine_problem:
            problems.append(f"engines.{name}: {engine_problem}{FIX}correct the value")
            continue
        settings[name] = dict(table)
    return {"disabled": [d for d in disabled if d in models], "settings": settings}
