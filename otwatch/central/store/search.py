"""The free-text search condition (the portal's search box) over central's alerts: the
trigram index of ``derived`` plus, on SQLite, the alerts still queued for it
(``search_backlog``), so a search finds an alert from the moment it is committed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, literal_column, select, text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from otwatch.central.store.derived import FTS_TABLE, PG_SEARCH_EXPR, SHORTEST_INDEXED
from otwatch.central.store.models import Alert
from otwatch.central.store.search_backlog import pending_match

__all__ = ["search_condition"]


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_condition(
    session: Session, term: str, *, dense_limit: int | None = None
) -> ColumnElement[bool] | None:
    """The indexed condition for alerts whose search columns contain ``term`` (any case), or
    None when the caller's plain ``ILIKE`` over the columns is the better plan.

    ``dense_limit`` (SQLite, listing newest first): when more alerts than that match, the
    newest-first scan meets a page of matches after a few thousand rows, sooner than the
    index can hand over every match; the index is asked for at most ``dense_limit + 1`` rows
    to find out, and fewer are used as they are. PostgreSQL's planner makes that choice
    itself (column statistics)."""
    if len(term) < SHORTEST_INDEXED:
        return None
    if session.get_bind().dialect.name == "postgresql":
        return literal_column(f"({PG_SEARCH_EXPR})").ilike(f"%{_like_escape(term)}%")
    if any(c in term for c in "%_\\"):
        return None  # the index takes LIKE without ESCAPE only: scan for these (rare) texts
    matches: Select[Any] = (
        select(literal_column("rowid"))
        .select_from(text(FTS_TABLE))
        .where(text("doc LIKE :pattern").bindparams(pattern=f"%{term}%"))
    )
    # alerts not indexed yet are matched by scanning their text (``search_backlog``)
    if dense_limit is not None:
        found = list(session.scalars(matches.limit(dense_limit + 1)))
        if len(found) <= dense_limit:
            found += session.scalars(pending_match(term).limit(dense_limit + 1 - len(found)))
        if len(found) > dense_limit:
            return None
        return Alert.id.in_(found)  # already at hand: do not search twice
    return Alert.id.in_(matches.union_all(pending_match(term)))
