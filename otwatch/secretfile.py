"""Who may read a file holding a secret (a broker ``password_file``).

The policy, as OpenSSH applies to private keys but fitted to the documented deployment
(``install -m 0640 -g otwatch-sync``: the daemon's own group reads it):

- readable, writable or executable by other users (any ``o`` bit), or writable by the group:
  refused;
- readable by the group: accepted; a warning when that group has members besides the user
  running otwatch (they could read the password too).
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import stat
from pathlib import Path

from otwatch.errors import OtwatchError

__all__ = ["SecretFileError", "check_secret_file"]

log = logging.getLogger(__name__)

_REFUSED = stat.S_IRWXO | stat.S_IWGRP | stat.S_IXGRP


class SecretFileError(OtwatchError):
    """A secret file other users may read or change."""


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def check_secret_file(path: Path) -> None:
    """Raise :class:`SecretFileError` when ``path`` is open to other users; log a warning
    when its group may read it and has other members. A missing file is left to the reader."""
    try:
        st = os.stat(path)
    except OSError:
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & _REFUSED:
        raise SecretFileError(
            f"'{path}' holds a password but its mode {mode:04o} lets other users read or "
            f"change it — fix: chmod 0600 (or 0640 with the daemon's own group) '{path}'"
        )
    if mode & stat.S_IRGRP:
        try:
            group = grp.getgrgid(st.st_gid)
        except KeyError:
            return
        others = sorted(set(group.gr_mem) - {_user()})
        if others:
            log.warning(
                "password file %s is readable by group %s, whose members %s can read it too",
                path,
                group.gr_name,
                ", ".join(others),
            )
