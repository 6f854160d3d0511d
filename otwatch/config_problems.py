"""How the configuration check reports a problem: ``ConfigError`` lists one
``key: what is wrong — fix: what to do`` line per problem (``describe`` writes them for
pydantic's errors)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from otwatch.errors import OtwatchError

__all__ = ["FIX", "SECRET_FIX", "SECRET_KEYS", "ConfigError", "describe", "problem_key"]

SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_token"})
FIX = " — fix: "


class ConfigError(OtwatchError):
    """The configuration is invalid; ``problems`` holds one ``key: what — fix: how`` each."""

    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"invalid configuration ({source}): " + "; ".join(problems))


SECRET_FIX = (
    "secrets are not accepted in the configuration" + FIX + "put the password in a file "
    "readable only by the daemon's user and set password_file"
)


def problem_key(loc: tuple[Any, ...], where: dict[tuple[str, ...], str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    source = where.get(tuple(str(p) for p in loc[:2]))
    return f"{source} ({text})" if source else text


def known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(model.model_fields)


def describe(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: tuple[str, ...],
    where: dict[tuple[str, ...], str],
) -> list[str]:
    """One ``key: what — fix: how`` line per pydantic error."""
    lines = []
    for err in exc.errors():
        loc, kind, given = err["loc"], err["type"], err.get("input")
        if kind == "value_error":
            what = str(err["ctx"]["error"])
        elif kind == "extra_forbidden":
            if str(loc[-1]) in SECRET_KEYS:
                what = SECRET_FIX
            else:
                known = known_keys(model, loc[:-1])
                what = f"unknown setting{FIX}check the spelling" + (
                    f" (known: {', '.join(known)})" if known else " (this table takes no keys)"
                )
        elif kind == "literal_error":
            what = f"{given!r} is not one of {err['ctx']['expected']}{FIX}use one of them"
        elif kind.startswith("int_"):
            what = f"{given!r} is not a whole number{FIX}write a number like 25"
        elif kind.startswith("float_"):
            what = f"{given!r} is not a number{FIX}write a number like 2.5"
        elif kind.startswith("bool_"):
            what = f"{given!r} is not true or false{FIX}write true or false (no quotes)"
        elif kind in ("list_type", "tuple_type"):
            what = f'{given!r} is not a list{FIX}write a list like ["a", "b"]'
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            what = f"{given!r} is not a table{FIX}write it as a [table] with keys"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            bound = err["msg"].lower().replace("input should be", "use a value")
            what = f"{given!r} is out of range{FIX}{bound}"
        elif kind == "string_type":
            what = f"{given!r} is not text{FIX}put it in double quotes"
        else:
            what = f"{given!r}: {err['msg'].lower()}{FIX}correct the value"
        lines.append(f"{problem_key(prefix + tuple(loc), where)}: {what}")
    return lines
