"""The one comma-split helper of options and settings."""

from __future__ import annotations

from otwatch.textutil import split_commas


def test_repeated_and_comma_separated_values_alike():
    assert split_commas(["new,active", " closed ", ",,", ""]) == ["new", "active", "closed"]
    assert split_commas("a, b") == ["a", "b"]
    assert split_commas([]) == []
