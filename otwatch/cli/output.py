"""Output formats shared by every listing command: ``--format table|json|jsonl|csv``."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from otwatch.csvsafe import csv_cell

__all__ = ["emit_records", "force_option", "format_option", "print_json", "render_table"]

FORMATS = ("table", "json", "jsonl", "csv")


def format_option(default: str = "table", choices: Sequence[str] = FORMATS) -> Callable:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices, case_sensitive=False),
        default=default,
        show_default=True,
        help="Output format.",
    )


def force_option(f: Callable) -> Callable:
    """``--force``: let ``-o PATH`` replace an existing regular file (see otwatch.fileout)."""
    return click.option(
        "--force", is_flag=True, help="Overwrite the output file if it exists (regular files only)."
    )(f)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def _cell(value: Any, width: int | None) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value)
    else:
        text = str(value)
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def _csv_text(value: Any) -> str:
    return _cell(value, None)


def render_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[str],
    *,
    widths: dict[str, int] | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Left-aligned columns sized to their content (optionally capped per column)."""
    widths = widths or {}
    headers = headers or {}
    cells = [[_cell(row.get(col), widths.get(col)) for col in columns] for row in rows]
    titles = [headers.get(col, col.upper().replace("_", " ")) for col in columns]
    sizes = [max([len(t)] + [len(r[i]) for r in cells]) for i, t in enumerate(titles)]
    lines = ["  ".join(t.ljust(sizes[i]) for i, t in enumerate(titles)).rstrip()]
    lines += ["  ".join(c.ljust(sizes[i]) for i, c in enumerate(r)).rstrip() for r in cells]
    return "\n".join(lines)


def emit_records(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    columns: Sequence[str],
    *,
    widths: dict[str, int] | None = None,
) -> None:
    """Print ``rows`` in ``fmt``; table and csv show ``columns``, json shows every key."""
    if fmt == "json":
        print_json(list(rows))
    elif fmt == "jsonl":
        for row in rows:
            click.echo(json.dumps(row, default=str))
    elif fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: csv_cell(row.get(c), _csv_text) for c in columns})
    else:
        click.echo(render_table(rows, columns, widths=widths) if rows else "(none)")
