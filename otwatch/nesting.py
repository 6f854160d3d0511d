"""Parsing operator-supplied TOML and JSON without letting nesting depth crash a command.

``tomllib`` and ``json`` parse recursively: a file nested a few thousand levels deep ends in a
``RecursionError`` traceback, and one a few hundred deep parses but breaks every recursive
walk after it (validation, redaction, printing). No otwatch file nests more than a few
levels, so anything deeper than :data:`MAX_DEPTH` is refused as a parse error, with the
parser's own exception type so callers' existing error handling applies.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from typing import Any, BinaryIO

__all__ = ["MAX_DEPTH", "depth_exceeds", "load_json", "load_toml"]

MAX_DEPTH = 32
"""Tables, arrays and objects inside one another; otwatch's own files use fewer than 6."""


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests dicts/lists more than ``limit`` deep (iterative: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _too_deep() -> str:
    return f"tables and arrays nested more than {MAX_DEPTH} levels deep"


def load_toml(handle: BinaryIO) -> dict[str, Any]:
    """``tomllib.load``, raising ``TOMLDecodeError`` for a document nested too deeply."""
    try:
        data = tomllib.load(handle)
    except RecursionError:
        raise tomllib.TOMLDecodeError(_too_deep()) from None
    if depth_exceeds(data):
        raise tomllib.TOMLDecodeError(_too_deep())
    return data


def load_json(raw: bytes | str) -> Any:
    """``json.loads``, raising ``JSONDecodeError`` (line 1) for a document nested too deeply."""
    try:
        data = json.loads(raw)
    except RecursionError:
        data = None
        deep = True
    else:
        deep = depth_exceeds(data)
    if deep:
        raise json.JSONDecodeError(
            f"objects and arrays nested more than {MAX_DEPTH} levels deep", "", 0
        )
    return data
