"""Open the central database (SQLite file or PostgreSQL URL), migrated to head.

``--db`` takes a SQLAlchemy URL (``sqlite:///path``, ``postgresql://user@host/db``) or a
plain file path (SQLite). PostgreSQL URLs use the psycopg 3 driver (extra ``postgres``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from otwatch.dbcommon import Migrations, SessionStore, set_sqlite_pragmas_durable
from otwatch.errors import OtwatchError

__all__ = [
    "CentralStore",
    "CentralStoreError",
    "dialect_insert",
    "migrate",
    "normalize_url",
    "open_central_store",
]

_MIGRATIONS = Migrations(Path(__file__).with_name("migrations"))


class CentralStoreError(OtwatchError):
    """The central database cannot be opened, written or migrated."""


def dialect_insert(name: str) -> Any:
    """The ``insert`` of the database dialect ``name``, which has ``on_conflict_do_…``
    (central runs on both)."""
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"upserts are implemented for sqlite and postgresql, not {name}")


def normalize_url(url: str) -> str:
    """A plain path becomes a SQLite URL; ``postgresql://`` gets the psycopg 3 driver."""
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CentralStoreError(f"invalid database URL {url!r}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            path = make_url(url).database
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url)
            event.listen(engine, "connect", set_sqlite_pragmas_durable)
            return engine
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, OSError) as exc:
        raise CentralStoreError(f"cannot use database {url!r}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise CentralStoreError(
            f"database driver missing ({exc.name}); install otwatch[postgres]"
        ) from None


head_revision = _MIGRATIONS.head
current_revision = _MIGRATIONS.current
migrate = _MIGRATIONS.upgrade
"""Upgrade the schema to a revision (default head); a no-op when it is already there."""


class CentralStore(SessionStore):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.dialect = engine.dialect.name

    def database_error(self, exc: OperationalError) -> CentralStoreError:
        return CentralStoreError(f"central database error: {exc.orig}")


def open_central_store(url: str, *, migrate_schema: bool = True) -> CentralStore:
    engine = _engine(normalize_url(url))
    try:
        if migrate_schema:
            migrate(engine)
    except (SQLAlchemyError, sqlite3.DatabaseError) as exc:
        engine.dispose()
        reason = getattr(exc, "orig", None) or exc
        raise CentralStoreError(f"cannot open central database: {reason}") from None
    return CentralStore(engine)
