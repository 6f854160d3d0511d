"""The object the root group puts on ``ctx.obj``: data directory, config file, log settings
and a lazily opened store (read-only for read commands)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path

import click

from otwatch.agent.store.db import Store, StorePermissionError, open_store
from otwatch.agent.store.readonly import open_for_reading

__all__ = ["CliContext", "pass_cli"]

DEFAULT_DATA_DIR = Path("/var/lib/otwatch")


@dataclass
class CliContext:
    data_dir: Path = DEFAULT_DATA_DIR
    config_path: Path | None = None
    """``--config``/``OTWATCH_CONFIG``; None means the default file if it exists."""
    log_level: str | None = None
    """``--log-level`` when given; None lets a daemon take its configured level."""
    log_format: str | None = None
    _store: Store | None = field(default=None, repr=False)
    _read_store: Store | None = field(default=None, repr=False)

    def store(
        self, *, read_only: bool = False, purpose: str = "change the sensor database"
    ) -> Store:
        """The sensor store; ``read_only`` for commands that only read (a reader may run them).

        A user who may not write gets one line naming the role needed for ``purpose``.
        """
        if self._store is not None:
            return self._store
        try:
            if read_only:
                if self._read_store is None:
                    self._read_store = open_for_reading(self.data_dir)
                return self._read_store
            self._store = open_store(self.data_dir)
        except StorePermissionError as exc:
            from otwatch.cli.roles import Role, current_role, permission_denied, roles_deployed

            if not roles_deployed():
                raise exc from None
            if read_only or current_role() is None:
                raise permission_denied("read alerts", Role.READ_ONLY) from None
            raise permission_denied(purpose, Role.ANALYST) from None
        return self._store

    @property
    def actor(self) -> str:
        """Who is acting, for the audit log: the Unix user running the command."""
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"

    def close(self) -> None:
        for store in (self._store, self._read_store):
            if store is not None:
                store.close()
        self._store = self._read_store = None


pass_cli = click.make_pass_decorator(CliContext)
