"""Open the sensor database: SQLite in WAL mode under the data directory, migrated to head.

Agent, sync daemon and CLI each open their own engine on the same file; WAL lets readers run
beside the one writer, and the busy timeout absorbs short write contention.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from otwatch.dbcommon import Migrations, set_sqlite_pragmas
from otwatch.errors import OtwatchError

__all__ = ["DB_FILENAME", "Store", "StoreError", "StorePermissionError", "open_store"]

DB_FILENAME = "otwatch.db"
_MIGRATIONS = Migrations(Path(__file__).with_name("migrations"))


class StoreError(OtwatchError):
    """The sensor database cannot be opened, written or migrated."""


class StorePermissionError(StoreError):
    """This user may not write (or read) the sensor database; the CLI names the role needed."""


def sqlite_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", set_sqlite_pragmas)
    return engine


def head_revision() -> str:
    return _MIGRATIONS.head()


def current_revision(engine: Engine) -> str | None:
    return _MIGRATIONS.current(engine)


def refuse_unknown_revision(revision: str | None, where: str) -> None:
    _MIGRATIONS.refuse_unknown(revision, where)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision``; a no-op when it is already there."""
    _MIGRATIONS.upgrade(engine, revision)


class Store:
    """The sensor database: an engine plus a session factory."""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One short transaction: commits on success, rolls back on error."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise StoreError(
                f"database error in {self.data_dir / DB_FILENAME}: {exc.orig}"
            ) from exc

    def close(self) -> None:
        self.engine.dispose()


def _create_db(db_path: Path, directory: Path) -> None:
    """Create the database: migrated under a temporary name, then linked into place.

    So a zero-length ``otwatch.db`` never appears in normal operation and can be refused as
    damage (see :func:`empty_database_error`); two processes creating it at once both link,
    the second finds the name taken and uses the first one's file.

    The file's read/write bits follow the directory's: SQLite would create it 0644 whatever
    the directory allows, and gives ``-wal``/``-shm`` the database file's mode, so a
    group-writable data directory (docs/deploy.md) needs this for its group to write. A 0700
    directory gives 0600, a 0755 one 0644, a 2770 one 0660; never world-writable. The mode is
    forced past the umask on purpose.
    """
    mode = directory.stat().st_mode & 0o664
    tmp = directory / f".{DB_FILENAME}.{secrets.token_hex(6)}.new"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    try:
        engine = sqlite_engine(tmp)
        try:
            migrate(engine)
        finally:
            engine.dispose()
        with contextlib.suppress(FileExistsError):
            os.link(tmp, db_path, follow_symlinks=False)
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)


def empty_database_error(db_path: Path) -> StoreError:
    """A zero-length database file is damage (a new one is never empty, see
    :func:`_create_db`): re-creating it would silently drop the ring index and alerts."""
    return StoreError(
        f"database {db_path} is empty (0 bytes), so it was damaged or truncated; otwatch will "
        "not re-create it: restore it from a backup, or move it away to start a new one"
    )


def open_store(data_dir: str | os.PathLike[str], *, migrate_schema: bool = True) -> Store:
    """Open (creating if needed) the store in ``data_dir``, migrated to the current schema
    (``store.readonly.open_for_reading`` opens it without write access)."""
    directory = Path(data_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create data directory {directory}: {exc.strerror}") from None
    db_path = directory / DB_FILENAME
    if not os.access(directory, os.W_OK | os.X_OK) or (
        db_path.exists() and not os.access(db_path, os.W_OK)
    ):
        raise StorePermissionError(
            f"data directory {directory} is not writable by this user "
            "(use --data-dir or OTWATCH_DATA_DIR to choose another)"
        )
    try:
        if not db_path.exists():
            _create_db(db_path, directory)
        elif db_path.stat().st_size == 0:
            raise empty_database_error(db_path)
    except OSError as exc:
        raise StoreError(f"cannot create database {db_path}: {exc.strerror}") from None
    except (DBAPIError, sqlite3.DatabaseError) as exc:
        raise StoreError(f"cannot create database {db_path}: {getattr(exc, 'orig', exc)}") from None
    engine = sqlite_engine(db_path)
    try:
        if migrate_schema:
            migrate(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise StoreError(f"cannot open database {db_path}: {exc.orig}") from None
    except sqlite3.DatabaseError as exc:
        engine.dispose()
        raise StoreError(f"cannot open database {db_path}: {exc}") from None
    return Store(engine, directory)
