"""CSV cells that a spreadsheet will not run as formulas (CSV/formula injection).

Alert messages, DNS names and user agents are attacker-controlled; a cell starting with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return is taken as a formula by Excel, LibreOffice
and Google Sheets. As OWASP recommends, such text cells get a leading ``'`` (shown by the
spreadsheet as text, visible in a text editor). Numbers written as numbers (counts, ids) are
left alone, so a negative number in a numeric column stays a number.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["FORMULA_STARTS", "csv_cell", "neutralise"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would read it as a formula (a lone
    ``-``, the CLI's "no value", cannot be one and stays as it is)."""
    return "'" + text if len(text) > 1 and text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Any, render: Callable[[Any], str] = str) -> Any:
    """The cell for ``value``: a number as is, anything else ``render``-ed and neutralised."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return neutralise(render(value))
