"""Read-only access to the sensor database, for users who may read but not write it.

SQLite in WAL mode reads through the ``-wal`` and ``-shm`` files. While the agent or the sync
daemon has the database open they exist, and a ``mode=ro`` connection uses them even when it
may not write them (SQLite ≥ 3.22). When nobody has the database open they are gone, the
database file alone holds every committed change, and a reader that may not create files in the
directory opens it with ``immutable=1`` (no locks, no ``-wal``). So that such a read can never
be torn by a daemon that starts and checkpoints meanwhile, the session compares the file's
identity, size and times before and after, and fails with "run it again" when they changed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from otwatch.agent.store.db import (
    DB_FILENAME,
    Store,
    StoreError,
    StorePermissionError,
    current_revision,
    empty_database_error,
    head_revision,
    open_store,
    refuse_unknown_revision,
)
from otwatch.dbcommon import BUSY_TIMEOUT_MS

__all__ = ["ReadOnlyStore", "open_for_reading", "open_read_only"]


def _fingerprint(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class ReadOnlyStore(Store):
    """A store whose sessions can read but never write (``PRAGMA query_only``)."""

    read_only = True

    def __init__(self, directory: Path) -> None:
        self.db_path = directory / DB_FILENAME
        self.wal_path = directory / f"{DB_FILENAME}-wal"
        self._immutable_used = False
        engine = create_engine("sqlite://", creator=self._connect, poolclass=NullPool)
        super().__init__(engine, directory)

    def _connect(self) -> sqlite3.Connection:
        immutable = not self.wal_path.exists()
        self._immutable_used = self._immutable_used or immutable
        uri = f"file:{quote(str(self.db_path))}?mode=ro" + ("&immutable=1" if immutable else "")
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only=ON")
        return conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        self._immutable_used = False
        before = _fingerprint(self.db_path)
        with super().session() as session:
            yield session
        if self._immutable_used and _fingerprint(self.db_path) != before:
            raise StoreError(
                f"the sensor database {self.db_path} changed while it was read "
                "(a daemon started); run the command again"
            )


def _writable(directory: Path, db_path: Path) -> bool:
    return os.access(directory, os.W_OK | os.X_OK) and (
        not db_path.exists() or os.access(db_path, os.R_OK | os.W_OK)
    )


def open_read_only(directory: Path) -> ReadOnlyStore | None:
    """The database in ``directory`` opened read-only, or None when it needs a schema upgrade
    and this user may do that (the caller then opens it for writing). A read never creates
    a database: a missing or zero-length one is an error."""
    db_path = directory / DB_FILENAME
    try:
        size = db_path.stat().st_size
    except FileNotFoundError:
        raise StoreError(
            f"no sensor database in {directory} (otwatch-agent creates it when it first runs; "
            "use --data-dir or OTWATCH_DATA_DIR to choose another directory)"
        ) from None
    except PermissionError:
        raise StorePermissionError(
            f"cannot read the sensor database in {directory}: permission denied"
        ) from None
    if size == 0:
        raise empty_database_error(db_path)
    if not os.access(db_path, os.R_OK):
        raise StorePermissionError(f"cannot read {db_path}: permission denied")
    store = ReadOnlyStore(directory)
    try:
        revision = current_revision(store.engine)
    except (DBAPIError, sqlite3.Error) as exc:
        store.close()
        raise StoreError(f"cannot open database {db_path}: {getattr(exc, 'orig', exc)}") from None
    if revision != head_revision():
        store.close()
        refuse_unknown_revision(revision, str(db_path))
        if _writable(directory, db_path):
            return None
        raise StoreError(
            f"database {db_path} has schema revision {revision or 'none'} but this otwatch "
            f"needs {head_revision()}; restart otwatch-agent (or run otwatch as an analyst) "
            "to upgrade it"
        )
    return store


def open_for_reading(data_dir: str | os.PathLike[str]) -> Store:
    """The store in ``data_dir`` for commands that only read: an existing, current database
    without write access (``open_read_only``); when it needs an upgrade, it is migrated as
    usual (``open_store``) if this user may write it. A missing one is an error, never
    created."""
    store = open_read_only(Path(data_dir))
    return store if store is not None else open_store(data_dir)
