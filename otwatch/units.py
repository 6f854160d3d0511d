"""Sizes written as text in configuration and on the command line (``64MiB``, ``2G``)."""

from __future__ import annotations

import re

from otwatch.errors import OtwatchError

__all__ = ["SizeError", "parse_size"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


class SizeError(OtwatchError):
    """A size given on the command line or in config could not be read."""


def parse_size(text: str) -> int:
    """Parse ``4096``, ``64k``, ``64KiB``, ``1.5G``, ``2GB`` into bytes (powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise SizeError(f"invalid size {text!r}; use a number and an optional unit K, M, G, T")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * (1024 ** _POWERS[unit]))
