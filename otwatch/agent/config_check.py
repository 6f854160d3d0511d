"""The sensor's checks of a loaded configuration: the BPF filter compiles and ``[engines]``
names real engines, whose tables (``enable``/``disable`` and thresholds) each engine accepts,
checked against its ``settings_class`` and its own ``check_settings`` without starting any
engine. ``otwatch config check``, ``agent run`` and ``agent replay`` run them; central loads
the same file with :func:`otwatch.config.load_config` alone and never imports a detector."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from otwatch.agent.capture.bpf import compile_filter
from otwatch.agent.engines.gate import TypeGateError, check_gate_settings
from otwatch.agent.engines.registry import ENGINES
from otwatch.config import Config, load_config
from otwatch.config_problems import FIX, ConfigError, describe, problem_key
from otwatch.errors import OtwatchError

__all__ = ["check_sensor_config", "load_sensor_config", "sensor_problems"]


def load_sensor_config(
    path: Path | str | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """:func:`~otwatch.config.load_config` plus the sensor's checks (the same
    :class:`ConfigError`, one line per problem)."""
    return check_sensor_config(load_config(path, env))


def check_sensor_config(config: Config) -> Config:
    """``config`` when the sensor can run it; else :class:`ConfigError` listing every problem."""
    problems = sensor_problems(config)
    if problems:
        raise ConfigError(problems, config.source)
    return config


def sensor_problems(config: Config) -> list[str]:
    """One ``key: what — fix: how`` line per problem of the BPF filter and ``[engines]``."""
    problems: list[str] = []
    bpf = config.capture.bpf
    if bpf:
        try:
            compile_filter(bpf)
        except OtwatchError as exc:
            key = problem_key(("capture", "bpf"), config.where)
            problems.append(f"{key}: {exc}{FIX}write a tcpdump filter expression")
    _check_engines(config.engines.disabled, config.engines.settings, problems, config.where)
    return problems


def _engines() -> dict[str, Any]:
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


def _engine_accepts(name: str, table: Mapping[str, Any]) -> str | None:
    """The engine's own checks (positive numbers, lists, IOC files that exist and parse),
    without starting it: a configuration that passes the check also starts the engine."""
    try:
        _engines()[name].check_settings(table)
    except (OtwatchError, TypeError, ValueError) as exc:
        return str(exc)
    return None


def _gate_accepts(name: str, table: Mapping[str, Any]) -> str | None:
    """``enable``/``disable`` (the alert types turned on or off, ``engines/gate.py``)."""
    try:
        check_gate_settings(name, _engines()[name].type_ids, table)
    except TypeGateError as exc:
        return str(exc)
    return None


def _check_engines(
    disabled: tuple[str, ...],
    settings: Mapping[str, Mapping[str, Any]],
    problems: list[str],
    where: dict[tuple[str, ...], str],
) -> None:
    models = _engine_models()
    known = ", ".join(sorted(models))
    for name in disabled:
        if name not in models:
            problems.append(
                f"{problem_key(('engines', 'disabled'), where)}: no engine named {name!r}{FIX}"
                f"use one of {known}"
            )
    for name, table in settings.items():
        if name not in models:
            problems.append(f"engines.{name}: no engine named {name!r}{FIX}use one of {known}")
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
