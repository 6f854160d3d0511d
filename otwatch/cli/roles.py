"""Sensor roles (spec: Read-only, Security Analyst, Admin) as Unix groups.

The file system does the enforcing (docs/deploy.md, "Roles"): the sensor database is writable
only by the service users and ``otwatch-analysts``; ``otwatch-readers`` can only read it;
the configuration file is writable only by ``otwatch-admins``. This module names the caller's
role and turns a refusal into one line that says which group is missing. Changes that the
file system cannot tell apart from triage (rules kept in the database) call
:func:`require_role` before writing.

Roles are cumulative by convention (an analyst is also in ``otwatch-readers``); the highest
group wins. Root counts as admin. On a machine without the ``otwatch-admins`` group (a
developer's checkout, a test) roles are not deployed and nothing is refused here.
"""

from __future__ import annotations

import getpass
import grp
import os
from enum import StrEnum

from otwatch.errors import OtwatchError

__all__ = [
    "ROLE_GROUPS",
    "PermissionDeniedError",
    "Role",
    "current_role",
    "permission_denied",
    "require_role",
    "roles_deployed",
]


class Role(StrEnum):
    READ_ONLY = "read-only"
    ANALYST = "analyst"
    ADMIN = "admin"


ROLE_GROUPS = {
    Role.READ_ONLY: "otwatch-readers",
    Role.ANALYST: "otwatch-analysts",
    Role.ADMIN: "otwatch-admins",
}
_RANK = {Role.READ_ONLY: 0, Role.ANALYST: 1, Role.ADMIN: 2}


class PermissionDeniedError(OtwatchError):
    """The caller's role does not allow the change (a one-line operator message)."""


def _group_names() -> set[str]:
    names = set()
    for gid in {os.getegid(), *os.getgroups()}:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return names


def roles_deployed() -> bool:
    """True when this machine has the role groups (installed by ``sysusers.d/otwatch.conf``)."""
    try:
        grp.getgrnam(ROLE_GROUPS[Role.ADMIN])
    except KeyError:
        return False
    return True


def current_role() -> Role | None:
    """The caller's highest role, or None when the caller is in no role group."""
    if os.geteuid() == 0:
        return Role.ADMIN
    names = _group_names()
    for role in (Role.ADMIN, Role.ANALYST, Role.READ_ONLY):
        if ROLE_GROUPS[role] in names:
            return role
    return None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def permission_denied(action: str, required: Role) -> PermissionDeniedError:
    """``permission denied: role 'read-only' cannot change alerts (member of … required)``."""
    role = current_role()
    who = f"role '{role}'" if role else f"user '{_user()}' (no otwatch role)"
    return PermissionDeniedError(
        f"permission denied: {who} cannot {action} (member of {ROLE_GROUPS[required]} required)"
    )


def require_role(required: Role, action: str) -> None:
    """Refuse ``action`` unless the caller holds ``required`` or higher (roles deployed only)."""
    if not roles_deployed():
        return
    role = current_role()
    if role is None or _RANK[role] < _RANK[required]:
        raise permission_denied(action, required)
