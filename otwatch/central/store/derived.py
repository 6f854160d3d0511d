"""Data the database derives from ``alerts`` by itself: the text search index and the counts
per group. Both are kept by triggers, so every writer (ingest upserts, API changes, jobs,
bulk loads) keeps them right without knowing about them.

- **Search** (the portal's free text: a case-insensitive substring of name, message,
  category, source or destination address, protocol). A substring cannot use a B-tree, so:
  SQLite has an FTS5 table with the ``trigram`` tokenizer over the columns joined by a
  separator (``alerts_search``, external content from the view ``alerts_search_doc``: it
  stores trigrams, not text), which ``LIKE`` uses; PostgreSQL a ``pg_trgm`` GIN index on the
  same joined text (``ix_alerts_search``), which ``ILIKE`` uses. ``store.search``
  writes the matching condition for either.
- **Counts** (``alert_counts``): the number of alerts per sensor, site, zone, engine,
  category, name, status and severity. A group-by over those columns, filtered only by them,
  adds up a few thousand rows instead of counting a million index entries. The counts are
  exact: a trigger changes them in the same transaction as the alert rows. PostgreSQL uses
  statement triggers with transition tables (one grouped upsert per statement, rows taken in
  key order so that concurrent writers lock them in the same order); SQLite row triggers.

Neither is an ORM table (``alert_counts`` is, ``AlertCount``; its triggers are not):
``install`` creates them, ``rebuild`` fills them from ``alerts`` (migration, bulk loads), and
``UNMANAGED`` names what a schema comparison must leave alone.

Migration ``0003`` runs ``install`` and ``rebuild`` from here, so the DDL in this module *is*
revision 0003's: do not change what ``install`` creates. A change to the triggers or the
search index is a new module (or new functions) and a new migration that replaces them, as
``search_backlog`` (revision 0004) did for SQLite's search triggers: the index is now filled
behind ingest, and ``store.search`` also matches the alerts still queued for it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

__all__ = [
    "COUNT_DIMENSIONS",
    "SEARCH_COLUMNS",
    "UNMANAGED",
    "drop",
    "drop_triggers",
    "include_name",
    "install",
    "rebuild",
]

SEARCH_COLUMNS = (
    "name", "message", "category", "source_address", "destination_address", "protocol",
)  # fmt: skip
COUNT_DIMENSIONS = ("sensor", "site", "zone", "engine", "category", "name", "status", "severity")
FTS_TABLE = "alerts_search"
PG_SEARCH_INDEX = "ix_alerts_search"
FTS_DOC_VIEW = "alerts_search_doc"
PG_SEARCH_EXPR = " || chr(31) || ".join(f"coalesce({c}, '')" for c in SEARCH_COLUMNS)
"""The columns joined by U+001F (a search text with that character matches nothing)."""
UNMANAGED = (FTS_TABLE, PG_SEARCH_INDEX)
"""Prefixes of schema objects this module owns (FTS5 shadow tables start with the name)."""
SHORTEST_INDEXED = 3
"""Trigram indexes answer substrings of three characters or more; shorter ones scan."""

_TRIGGERS = {
    "sqlite": (
        "alerts_search_ai", "alerts_search_ad", "alerts_search_au",
        "alert_counts_ai", "alert_counts_ad", "alert_counts_au",
    ),
    "postgresql": ("alert_counts_ins", "alert_counts_upd", "alert_counts_del"),
}  # fmt: skip


def include_name(name: str | None, type_: str, parent_names: Any = None) -> bool:
    """Alembic ``include_name`` hook: skip the objects of this module."""
    return not (name and name.startswith(UNMANAGED))


# -- DDL -------------------------------------------------------------------------------------


def _cols(prefix: str, columns: tuple[str, ...] = SEARCH_COLUMNS) -> str:
    return ", ".join(f"{prefix}{c}" for c in columns)


def _changed(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"old.{c} IS NOT new.{c}" for c in columns)


def _doc(prefix: str, sep: str) -> str:
    """The search columns as one text, joined by U+001F (SQLite ``char``, PostgreSQL ``chr``)."""
    return f" || {sep}(31) || ".join(f"coalesce({prefix}{c}, '')" for c in SEARCH_COLUMNS)


def _sqlite_ddl() -> tuple[list[str], list[str]]:
    """(objects, triggers)."""
    dims = _cols("", COUNT_DIMENSIONS)
    fts_delete = (
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, doc) "
        f"VALUES ('delete', old.id, {_doc('old.', 'char')});"
    )
    fts_insert = f"INSERT INTO {FTS_TABLE}(rowid, doc) VALUES (new.id, {_doc('new.', 'char')});"
    where_old = " AND ".join(f"{d} = old.{d}" for d in COUNT_DIMENSIONS)
    count_down = f"UPDATE alert_counts SET n = n - 1 WHERE {where_old};"
    count_up = (
        f"INSERT INTO alert_counts({dims}, n) VALUES ({_cols('new.', COUNT_DIMENSIONS)}, 1) "
        f"ON CONFLICT ({dims}) DO UPDATE SET n = n + 1;"
    )
    cols = _cols("")
    # One text column, no positions (detail=none): half the work per inserted alert of six
    # columns with positions, and FTS5 checks each candidate row with LIKE itself.
    objects = [
        f"CREATE VIEW IF NOT EXISTS {FTS_DOC_VIEW} AS SELECT id, {_doc('', 'char')} AS doc "
        "FROM alerts",
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5(doc, "
        f"content='{FTS_DOC_VIEW}', content_rowid='id', tokenize='trigram', detail='none')",
    ]
    return objects, [
        f"CREATE TRIGGER alerts_search_ai AFTER INSERT ON alerts BEGIN {fts_insert} END",
        f"CREATE TRIGGER alerts_search_ad AFTER DELETE ON alerts BEGIN {fts_delete} END",
        f"CREATE TRIGGER alerts_search_au AFTER UPDATE OF {cols} ON alerts "
        f"WHEN {_changed(SEARCH_COLUMNS)} BEGIN {fts_delete} {fts_insert} END",
        f"CREATE TRIGGER alert_counts_ai AFTER INSERT ON alerts BEGIN {count_up} END",
        f"CREATE TRIGGER alert_counts_ad AFTER DELETE ON alerts BEGIN {count_down} END",
        f"CREATE TRIGGER alert_counts_au AFTER UPDATE OF {dims} ON alerts "
        f"WHEN {_changed(COUNT_DIMENSIONS)} BEGIN {count_down} {count_up} END",
    ]


def _pg_count_upsert(source: str, having: str = "") -> str:
    dims = _cols("", COUNT_DIMENSIONS)
    return (
        f"INSERT INTO alert_counts AS c ({dims}, n) SELECT {dims}, sum(d) FROM ({source}) x "
        f"GROUP BY {dims} {having} ORDER BY {dims} "
        f"ON CONFLICT ({dims}) DO UPDATE SET n = c.n + EXCLUDED.n"
    )


def _pg_ddl() -> tuple[list[str], list[str]]:
    """(objects, triggers)."""
    dims = _cols("", COUNT_DIMENSIONS)
    bodies = {
        "alert_counts_ins": (
            "INSERT",
            "REFERENCING NEW TABLE AS new_rows",
            _pg_count_upsert(f"SELECT {dims}, 1 AS d FROM new_rows"),
        ),
        "alert_counts_upd": (
            "UPDATE",
            "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
            _pg_count_upsert(
                f"SELECT {dims}, 1 AS d FROM new_rows UNION ALL "
                f"SELECT {dims}, -1 AS d FROM old_rows",
                "HAVING sum(d) <> 0",
            ),
        ),
        "alert_counts_del": (
            "DELETE",
            "REFERENCING OLD TABLE AS old_rows",
            _pg_count_upsert(f"SELECT {dims}, -1 AS d FROM old_rows"),
        ),
    }
    objects: list[str] = []  # the search index: see install (it needs pg_trgm's schema)
    triggers = []
    for name, (event, transition, body) in bodies.items():
        objects.append(
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {body}; RETURN NULL; END $$"
        )
        triggers.append(
            f"CREATE TRIGGER {name} AFTER {event} ON alerts {transition} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    return objects, triggers


def install(conn: Connection, *, triggers_only: bool = False) -> None:
    """Create the search index, the count triggers (and their functions); ``rebuild`` fills
    them from rows that are already there."""
    postgres = conn.dialect.name == "postgresql"
    objects, triggers = _pg_ddl() if postgres else _sqlite_ddl()
    if postgres and not triggers_only:
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        # the extension may live in another schema than ours (it exists once per database)
        schema = conn.exec_driver_sql(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'"
        ).scalar_one()
        objects.insert(
            0,
            f"CREATE INDEX IF NOT EXISTS {PG_SEARCH_INDEX} ON alerts "
            f"USING gin (({PG_SEARCH_EXPR}) {schema}.gin_trgm_ops)",
        )
    for statement in triggers if triggers_only else [*objects, *triggers]:
        conn.exec_driver_sql(statement)


def drop_triggers(conn: Connection) -> None:
    """Stop maintaining the derived data (a bulk load; ``install`` + ``rebuild`` after)."""
    for name in _TRIGGERS[conn.dialect.name]:
        suffix = " ON alerts" if conn.dialect.name == "postgresql" else ""
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}{suffix}")


def drop(conn: Connection) -> None:
    """Remove everything of this module (migration downgrade)."""
    drop_triggers(conn)
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS_TABLE}")
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {FTS_DOC_VIEW}")
    else:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {PG_SEARCH_INDEX}")
        for name in _TRIGGERS["postgresql"]:
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")


def rebuild(conn: Connection) -> None:
    """Refill the counts (and SQLite's search table) from ``alerts``."""
    dims = _cols("", COUNT_DIMENSIONS)
    conn.exec_driver_sql("DELETE FROM alert_counts")
    conn.exec_driver_sql(
        f"INSERT INTO alert_counts ({dims}, n) SELECT {dims}, count(*) FROM alerts GROUP BY {dims}"
    )
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
