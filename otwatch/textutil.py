"""Small text helpers shared by the CLI, the HTTP API and the configuration loader."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["split_commas"]


def split_commas(values: str | Iterable[str]) -> list[str]:
    """Items of repeated options and of comma-separated values alike, stripped, blanks
    dropped: ``["new,active", " closed "]`` → ``["new", "active", "closed"]``."""
    if isinstance(values, str):
        values = (values,)
    return [item.strip() for value in values for item in value.split(",") if item.strip()]
