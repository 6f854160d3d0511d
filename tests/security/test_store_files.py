"""Database files a command must not trust: a missing one (a mistyped ``--data-dir``), a
zero-length one, and one a newer otwatch migrated (sensor and central stores). Each is one
``error:`` line and a non-zero exit through the real CLI, and the files are left as found."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from otwatch.agent.store.db import DB_FILENAME, head_revision, open_store
from otwatch.central.store.db import head_revision as central_head
from otwatch.central.store.db import open_central_store
from otwatch.cli.main import cli
from tests.centraldb import central_url, pg_database, pg_url  # noqa: F401

FUTURE = "ffff_from_a_newer_otwatch"
OTWATCH = [sys.executable, "-m", "otwatch.cli"]


def otwatch(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point as a subprocess (as an operator runs it)."""
    env = {k: v for k, v in os.environ.items() if k != "OTWATCH_DEBUG"}
    return subprocess.run([*OTWATCH, *args], capture_output=True, text=True, timeout=120, env=env)


def invoke(*args: str) -> subprocess.CompletedProcess:
    """The same through click's runner (no interpreter start-up), in the entry point's shape."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    stderr = result.stderr.replace("Error: ", "error: ", 1)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, stderr)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return errors[0]


READ_COMMANDS = [
    ("alerts", "list"),
    ("alerts", "show", "1"),
    ("alerts", "export", "-o", "-"),
    ("pcap", "status"),
    ("status",),
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_read_commands_on_a_mistyped_data_dir_create_nothing(tmp_path, args):
    typo = tmp_path / "var" / "lib" / "otwatc"
    line = one_error_line(invoke("--data-dir", str(typo), *args))
    assert f"no sensor database in {typo}" in line
    assert not (tmp_path / "var").exists()
    (tmp_path / "empty").mkdir()
    line = one_error_line(invoke("--data-dir", str(tmp_path / "empty"), *args))
    assert "no sensor database in" in line
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize("args", [("alerts", "list"), ("alerts", "learn", "1"), ("status",)])
def test_zero_length_database_is_refused_not_recreated(tmp_path, args):
    (tmp_path / DB_FILENAME).touch()
    line = one_error_line(invoke("--data-dir", str(tmp_path), *args))
    assert "is empty (0 bytes)" in line and "will not re-create it" in line
    assert (tmp_path / DB_FILENAME).stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_FILENAME]


def test_a_new_database_never_appears_empty(tmp_path):
    """A write command creates the database under a temporary name and links it in migrated,
    so the zero-length refusal above cannot hit a database that is being created."""
    store = open_store(tmp_path / "d")
    store.close()
    files = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert files == [DB_FILENAME]
    assert (tmp_path / "d" / DB_FILENAME).stat().st_size > 0


def _set_revision(url: str, revision: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


@pytest.mark.parametrize("args", [("alerts", "list"), ("alerts", "learn", "1"), ("status",)])
def test_sensor_database_newer_than_the_code(tmp_path, args):
    open_store(tmp_path).close()
    _set_revision(f"sqlite:///{tmp_path / DB_FILENAME}", FUTURE)
    run = otwatch if args == ("alerts", "list") else invoke  # once through the entry point
    line = one_error_line(run("--data-dir", str(tmp_path), *args))
    assert f"has revision {FUTURE}, newer than this otwatch" in line
    assert f"knows up to {head_revision()}" in line and line.endswith("upgrade otwatch")
    engine = create_engine(f"sqlite:///{tmp_path / DB_FILENAME}")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == FUTURE
    engine.dispose()


def test_central_database_newer_than_the_code(central_url):  # noqa: F811
    open_central_store(central_url).close()
    _set_revision(central_url, FUTURE)
    line = one_error_line(invoke("central", "token", "list", "--db", central_url))
    assert f"has revision {FUTURE}, newer than this otwatch" in line
    assert f"knows up to {central_head()}" in line and line.endswith("upgrade otwatch")
    if central_url.startswith("postgresql"):
        assert "password" not in line.lower() or "***" in line
