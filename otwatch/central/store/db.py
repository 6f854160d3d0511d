"""Open the central database (SQLite file or PostgreSQL URL), migrated to head.

``--db`` takes a SQLAlchemy URL (``sqlite:///path``, ``postgresql://user@host/db``) or a
plain file path (SQLite). PostgreSQL URLs use the psycopg 3 driver (extra ``postgres``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from otwatch.dbcommon import Migrations, set_sqlite_pragmas_durable
from otwatch.errors import OtwatchError

__all__ = ["CentralStore", "CentralStoreError", "migrate", "normalize_url", "open_central_store"]

_MIGRATIONS = Migrations(Path(__file__).with_name("migrations"))


class CentralStoreError(OtwatchError):
    """The central database cannot be opened, written or migrated."""


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


def head_revision() -> str:
    return _MIGRATIONS.head()


def current_revision(engine: Engine) -> str | None:
    return _MIGRATIONS.current(engine)


def migrate(engine: Engine, revision: str = "head") -> None:
    _MIGRATIONS.upgrade(engine, revision)


class CentralStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One short transaction: commits on success, rolls back on error."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise CentralStoreError(f"central database error: {exc.orig}") from exc

    def close(self) -> None:
        self.engine.dispose()


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
