"""SQLite's search index filled behind ingest, in bulk, with search exact all the time.

Revision 0003 kept the FTS5 trigram index (``otwatch.central.store.derived``) by row
triggers inside every ingest transaction. That was about half of central's SQLite time per
new alert (profiled in process, ``docs/sync.md``): FTS5 flushes its pending terms at the
end of every statement, and an ingest statement holds a few hundred rows. Revision 0004
replaces those triggers:

- inserting an alert, or changing one of its search columns, puts its id in
  ``alerts_search_pending`` (a rowid table: a few microseconds);
- an update or delete of an alert that *is* in the index still removes its old text from
  the index in the same statement (external-content FTS5 needs the old values, which only
  the trigger still has);
- ``index_pending`` moves pending alerts into the index many thousand rows per statement,
  about half the work per row; central runs it whenever ingest has been idle for a moment,
  and every second while more than ``MAX_BACKLOG`` wait (``otwatch.central.service``);
- ``search_condition`` (``store.search``) matches pending alerts with ``LIKE`` over the same
  text, so a search finds an alert from the moment it is committed.

PostgreSQL is unchanged: its ``pg_trgm`` GIN index already defers work (``fastupdate``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select, literal_column, select, text

from otwatch.central.store import derived
from otwatch.central.store.derived import (
    FTS_DOC_VIEW,
    FTS_TABLE,
    SEARCH_COLUMNS,
    _changed,
    _cols,
    _doc,
    _sqlite_ddl,
)

__all__ = [
    "INDEX_STEP",
    "MAX_BACKLOG",
    "PENDING_TABLE",
    "drop",
    "index_pending",
    "install",
    "pending_count",
    "pending_match",
    "resume_triggers",
    "suspend_triggers",
]

PENDING_TABLE = "alerts_search_pending"
"""Ids of alerts whose current text is not in the FTS5 index (the name starts with the FTS
table's, so ``derived.UNMANAGED`` keeps it out of schema comparisons)."""
INDEX_STEP = 5_000
"""Rows per ``index_pending`` call: about 0.1 s of work, so a message that arrives
meanwhile waits little."""
MAX_BACKLOG = 50_000
"""Pending alerts central lets gather while ingest is busy; above it, it indexes a step a
second even then (a search scans the pending alerts' text: 50,000 take about 0.1 s)."""

_OLD_TRIGGERS = ("alerts_search_ai", "alerts_search_ad", "alerts_search_au")
_TRIGGERS = ("alerts_search_pending_ai", "alerts_search_pending_ad", "alerts_search_pending_au")


def _ddl() -> list[str]:
    indexed = f"NOT EXISTS (SELECT 1 FROM {PENDING_TABLE} WHERE id = old.id)"
    unindex = (
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, doc) "
        f"SELECT 'delete', old.id, {_doc('old.', 'char')} WHERE {indexed};"
    )
    enqueue = f"INSERT OR IGNORE INTO {PENDING_TABLE}(id) VALUES (new.id);"
    return [
        f"CREATE TABLE IF NOT EXISTS {PENDING_TABLE} (id INTEGER PRIMARY KEY)",
        f"CREATE TRIGGER alerts_search_pending_ai AFTER INSERT ON alerts BEGIN {enqueue} END",
        f"CREATE TRIGGER alerts_search_pending_ad AFTER DELETE ON alerts BEGIN {unindex} "
        f"DELETE FROM {PENDING_TABLE} WHERE id = old.id; END",
        f"CREATE TRIGGER alerts_search_pending_au AFTER UPDATE OF {_cols('')} ON alerts "
        f"WHEN {_changed(SEARCH_COLUMNS)} BEGIN {unindex} {enqueue} END",
    ]


def install(conn: Connection) -> None:
    """Revision 0004 on SQLite: replace 0003's search triggers (the index stays as it is)."""
    if conn.dialect.name != "sqlite":
        return
    for name in _OLD_TRIGGERS:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    for statement in _ddl():
        conn.exec_driver_sql(statement)


def drop(conn: Connection) -> None:
    """Back to revision 0003: index what is pending, then 0003's triggers again."""
    if conn.dialect.name != "sqlite":
        return
    while index_pending(conn, INDEX_STEP):
        pass
    for name in _TRIGGERS:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {PENDING_TABLE}")
    _, triggers = _sqlite_ddl()
    for statement in triggers:
        if statement.split()[2] in _OLD_TRIGGERS:
            conn.exec_driver_sql(statement)


def index_pending(conn: Connection, limit: int = INDEX_STEP, *, keep: int = 0) -> int:
    """Move up to ``limit`` pending alerts into the search index, leaving at least ``keep``
    pending; returns how many. The caller commits (both statements belong together)."""
    if conn.dialect.name != "sqlite":
        return 0
    if keep:
        limit = min(limit, pending_count(conn) - keep)
        if limit <= 0:
            return 0
    elif conn.exec_driver_sql(f"SELECT 1 FROM {PENDING_TABLE} LIMIT 1").first() is None:
        return 0  # nothing to do: no write transaction
    batch = f"SELECT id FROM {PENDING_TABLE} ORDER BY id LIMIT {int(limit)}"
    conn.exec_driver_sql(
        f"INSERT INTO {FTS_TABLE}(rowid, doc) SELECT id, doc FROM {FTS_DOC_VIEW} "
        f"WHERE id IN ({batch})"
    )
    return conn.exec_driver_sql(f"DELETE FROM {PENDING_TABLE} WHERE id IN ({batch})").rowcount


def pending_count(conn: Connection) -> int:
    if conn.dialect.name != "sqlite":
        return 0
    return int(conn.exec_driver_sql(f"SELECT count(*) FROM {PENDING_TABLE}").scalar_one())


def suspend_triggers(conn: Connection) -> None:
    """Stop maintaining the derived data for a bulk load (``resume_triggers`` after)."""
    derived.drop_triggers(conn)
    if conn.dialect.name == "sqlite":
        for name in _TRIGGERS:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")


def resume_triggers(conn: Connection) -> None:
    """After a bulk load: counts and search index rebuilt from ``alerts``, triggers back."""
    derived.rebuild(conn)
    derived.install(conn, triggers_only=True)  # revision 0003's triggers, then ours
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"DELETE FROM {PENDING_TABLE}")
        install(conn)


def pending_match(term: str) -> Select[Any]:
    """Ids of pending alerts whose text contains ``term`` (no LIKE wildcards in it: the
    caller, ``search.search_condition``, checks), as a select of ``id``."""
    return (
        select(literal_column("id"))
        .select_from(text(FTS_DOC_VIEW))
        .where(
            literal_column("id").in_(select(literal_column("id")).select_from(text(PENDING_TABLE))),
            text("doc LIKE :pending_pattern").bindparams(pending_pattern=f"%{term}%"),
        )
    )
