"""Build an engine's frozen ``Config`` from ``ctx.settings[engine]`` with clear errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from otwatch.errors import OtwatchError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["EngineSettingsError", "engine_config"]

C = TypeVar("C", bound="DataclassInstance")


class EngineSettingsError(OtwatchError):
    """A detector setting is unknown or has the wrong type."""


def engine_config(cls: type[C], settings: Mapping[str, Any] | None, engine: str) -> C:
    """``cls(**settings)`` where lists become tuples and numbers are checked."""
    values = dict(settings or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise EngineSettingsError(
            f"settings for detector {engine!r}: unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(fields)})"
        )
    for name, value in values.items():
        default = fields[name].default
        if isinstance(default, tuple):
            if isinstance(value, str) or not isinstance(value, list | tuple):
                raise EngineSettingsError(
                    f"settings for detector {engine!r}: {name} must be a list"
                )
            values[name] = tuple(value)
        elif isinstance(default, int | float) and not isinstance(default, bool):  # noqa: SIM102
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise EngineSettingsError(
                    f"settings for detector {engine!r}: {name} must be a positive number"
                )
    return cls(**values)
