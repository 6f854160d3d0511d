"""The object the root group puts on ``ctx.obj``: data directory and a lazily opened store."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

import click

from otwatch.agent.store.db import Store, open_store

__all__ = ["CliContext", "pass_cli"]

DEFAULT_DATA_DIR = Path("/var/lib/otwatch")


@dataclass
class CliContext:
    data_dir: Path = DEFAULT_DATA_DIR
    _store: Store | None = field(default=None, repr=False)

    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.data_dir)
        return self._store

    @property
    def actor(self) -> str:
        """Who is acting, for the audit log: the Unix user running the command."""
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_cli = click.make_pass_decorator(CliContext)
