"""Central database URLs for tests: SQLite always, PostgreSQL when 127.0.0.1:5432 answers.

``central_url`` is parametrized over both backends. Each PostgreSQL test gets its own schema
(via ``search_path`` in the URL) inside one database created for the test run; both are
dropped afterwards. Import the fixture into a test module to use it.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/test"


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A database for this test run (dropped at the end); skips when PostgreSQL is absent."""
    if not postgres_reachable():
        if os.environ.get("CI"):  # CI runs the central suite on PostgreSQL too: never skip it
            pytest.fail(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT} (CI needs it)")
        pytest.skip(f"PostgreSQL not reachable on {PG_HOST}:{PG_PORT}")
    from sqlalchemy import create_engine, text

    name = f"otwatch_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # e.g. no such role: say why instead of erroring
        admin.dispose()
        pytest.skip(f"cannot create a PostgreSQL test database: {exc}")
    yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def pg_schema(database_url: str) -> Iterator[str]:
    """A fresh schema in the database, as a URL whose search_path points at it."""
    from sqlalchemy import create_engine, text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{database_url}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    with pg_schema(pg_database) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def central_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'central.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def central_store(central_url):
    from otwatch.central.store.db import open_central_store

    store = open_central_store(central_url)
    yield store
    store.close()
