"""Database plumbing shared by the sensor store and the central store.

One naming convention and primary-key type for both schemas, one set of SQLite PRAGMAs, and
one way to run an Alembic tree whose engine comes from otwatch (never from an ini file).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import BigInteger, CursorResult, Engine, Integer, MetaData, Result, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from otwatch.errors import OtwatchError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "NAMING_CONVENTION",
    "Migrations",
    "PrimaryKey",
    "SchemaTooNewError",
    "SessionStore",
    "rowcount",
    "run_alembic_env",
    "set_sqlite_pragmas",
    "set_sqlite_pragmas_durable",
]

BUSY_TIMEOUT_MS = 30_000
CENTRAL_CACHE_KIB = 64 << 10
"""Central's SQLite page cache per connection, filled as pages are used: an alert insert
touches a dozen index B-trees, and with SQLite's 2 MiB default their pages kept being read
again from the OS (about 15% of central's time per new alert, in-process A/B of 100,000
alerts; ``docs/sync.md``)."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite autoincrement needs exactly INTEGER; other databases get BIGINT.
PrimaryKey = BigInteger().with_variant(Integer, "sqlite")


def set_sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """``connect`` listener: WAL, a busy timeout for short write contention, foreign keys,
    ``synchronous=NORMAL`` (a commit survives a crash of the process; the last ones may be
    rolled back by a power loss). The sensor's store."""
    _pragmas(dbapi_connection, "NORMAL")


def set_sqlite_pragmas_durable(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    """As ``set_sqlite_pragmas`` with ``synchronous=FULL``: every commit is on disk before it
    returns (an fsync of the WAL). Central's store, whose commits are acknowledged to sensors
    that then delete their copy: a power loss must not take back an acknowledged batch.
    With a page cache of ``CENTRAL_CACHE_KIB`` per connection (SQLite's default is 2 MiB)."""
    _pragmas(dbapi_connection, "FULL", CENTRAL_CACHE_KIB)


def _pragmas(dbapi_connection: sqlite3.Connection, synchronous: str, cache_kib: int = 0) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    if cache_kib:
        cursor.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
    cursor.close()


_REVISION_LINE = re.compile(
    r"""^(revision|down_revision)\b[^=\n]*=\s*(?:["']([^"'\n]+)["']|None)\s*$""", re.M
)


class SchemaTooNewError(OtwatchError):
    """The database was migrated by a newer otwatch: this one must not touch it."""


class Migrations:
    """An Alembic script directory run against an engine otwatch built."""

    def __init__(self, script_location: Path) -> None:
        self.script_location = script_location

    def config(self, engine: Engine | None) -> Any:
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(self.script_location))
        config.attributes["engine"] = engine
        return config

    def _revision_lines(self) -> list[dict[str, str]] | None:
        """``revision``/``down_revision`` of each version file, or None when a file does not
        name its revision plainly (Alembic must decide then)."""
        files = []
        for path in (self.script_location / "versions").glob("*.py"):
            found = _REVISION_LINE.findall(path.read_text(encoding="utf-8"))
            named = dict((kind, value) for kind, value in found)
            if "revision" not in named:
                return None
            files.append(named)
        return files

    def head(self) -> str:
        """The head revision. Read from the version files' ``revision`` and
        ``down_revision`` lines: importing Alembic only to learn that a database is already
        at head cost every command and daemon about 0.2 s of start-up. Alembic decides
        whenever the files do not give one plain head (tests compare both)."""
        files = self._revision_lines()
        if files is None:
            return self.alembic_head()
        revisions = {named["revision"] for named in files}
        parents = {named["down_revision"] for named in files if named.get("down_revision")}
        heads = revisions - parents
        return heads.pop() if len(heads) == 1 else self.alembic_head()

    def known(self) -> set[str]:
        """Every revision this otwatch ships."""
        files = self._revision_lines()
        if files is not None:
            return {named["revision"] for named in files}
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self.config(None))
        return {rev.revision for rev in script.walk_revisions()}

    def refuse_unknown(self, revision: str | None, where: str) -> None:
        """Raise :class:`SchemaTooNewError` when ``revision`` is not one this otwatch ships:
        a newer otwatch migrated the database, and neither downgrading nor reading it with
        an older model is safe."""
        if revision is not None and revision not in self.known():
            raise SchemaTooNewError(
                f"database {where} has revision {revision}, newer than this otwatch "
                f"(which knows up to {self.head()}); upgrade otwatch"
            )

    def alembic_head(self) -> str:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(self.config(None)).get_current_head()
        assert head is not None, "a migration tree with no revision"
        return head

    @staticmethod
    def current(engine: Engine) -> str | None:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def upgrade(self, engine: Engine, revision: str = "head") -> None:
        """Upgrade to ``revision``; a no-op when the database is already at head."""
        current = self.current(engine)
        if revision == "head" and current == self.head():
            return
        self.refuse_unknown(current, engine.url.render_as_string(hide_password=True))
        from alembic import command

        command.upgrade(self.config(engine), revision)


class SessionStore:
    """An engine plus a session factory: the part both stores share. A subclass says how a
    database error reads to its users (:meth:`database_error`)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    def database_error(self, exc: OperationalError) -> Exception:
        """The error ``session()`` raises for an operational database error."""
        return exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One short transaction: commits on success, rolls back on error."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise self.database_error(exc) from exc

    def close(self) -> None:
        self.engine.dispose()


def run_alembic_env(metadata: MetaData) -> None:
    """Body of a migrations ``env.py``: offline (SQL script) or online against the engine in
    the config's ``engine`` attribute; batch mode for SQLite ALTERs; logging left alone."""
    from alembic import context

    if context.is_offline_mode():
        context.configure(
            url=context.config.get_main_option("sqlalchemy.url"),
            target_metadata=metadata,
            literal_binds=True,
            render_as_batch=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE touched (``Session.execute`` is typed as returning a plain
    ``Result``; for DML it is a ``CursorResult``, which has the count)."""
    return int(cast("CursorResult[Any]", result).rowcount or 0)
