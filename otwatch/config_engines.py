"""``[engines]`` in the configuration, by shape only: a table whose ``disabled`` is a list of
names and whose other keys are tables (``[engines.<name>]``). Which names exist and what
their tables may hold is the sensor's business (:mod:`otwatch.agent.config_check`): central
loads the same file without importing a detector."""

from __future__ import annotations

from typing import Any

from otwatch.config_problems import FIX, problem_key

__all__ = ["engines_table"]


def engines_table(raw: Any, problems: list[str], where: dict[tuple[str, ...], str]) -> Any:
    """The EnginesSection input of ``[engines]``; problems of shape appended."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"engines: {raw!r} is not a table{FIX}write it as [engines]")
        return {}
    disabled = raw.get("disabled", [])
    if not isinstance(disabled, list | tuple) or not all(isinstance(d, str) for d in disabled):
        problems.append(
            f"{problem_key(('engines', 'disabled'), where)}: {disabled!r} is not a list of engine "
            f'names{FIX}write e.g. disabled = ["port_scan"]'
        )
        disabled = []
    settings: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if name == "disabled":
            continue
        if not isinstance(table, dict):
            problems.append(
                f"engines.{name}: {table!r} is not a table{FIX}write it as [engines.{name}]"
            )
            continue
        settings[name] = dict(table)
    return {"disabled": list(disabled), "settings": settings}
