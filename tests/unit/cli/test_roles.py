"""``otwatch.cli.roles``: the caller's role from Unix groups and the refusal message.

The enforcement itself (file permissions) is tested with real users in
tests/integration/deploy/test_roles.py.
"""

from __future__ import annotations

import pytest

from otwatch.cli import roles
from otwatch.cli.roles import PermissionDeniedError, Role, current_role, require_role


@pytest.fixture
def as_user(monkeypatch):
    def become(groups: set[str], *, deployed: bool = True, euid: int = 1000) -> None:
        monkeypatch.setattr(roles.os, "geteuid", lambda: euid)
        monkeypatch.setattr(roles, "_group_names", lambda: groups)
        monkeypatch.setattr(roles, "roles_deployed", lambda: deployed)
        monkeypatch.setattr(roles, "_user", lambda: "alice")

    return become


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (set(), None),
        ({"users", "otwatch-readers"}, Role.READ_ONLY),
        ({"otwatch-readers", "otwatch-analysts"}, Role.ANALYST),
        ({"otwatch-analysts"}, Role.ANALYST),
        ({"otwatch-admins"}, Role.ADMIN),
    ],
)
def test_highest_group_wins(as_user, groups, role):
    as_user(groups)
    assert current_role() is role


def test_root_is_admin(as_user):
    as_user(set(), euid=0)
    assert current_role() is Role.ADMIN
    require_role(Role.ADMIN, "change rules")


def test_refusal_names_role_and_group(as_user):
    as_user({"otwatch-readers", "otwatch-analysts"})
    require_role(Role.ANALYST, "change alerts")
    with pytest.raises(PermissionDeniedError) as info:
        require_role(Role.ADMIN, "change rules")
    assert str(info.value) == (
        "permission denied: role 'analyst' cannot change rules (member of otwatch-admins required)"
    )


def test_no_role_names_the_user(as_user):
    as_user(set())
    with pytest.raises(PermissionDeniedError, match=r"user 'alice' \(no otwatch role\)"):
        require_role(Role.READ_ONLY, "read alerts")


def test_nothing_is_refused_where_roles_are_not_deployed(as_user):
    as_user(set(), deployed=False)
    require_role(Role.ADMIN, "change rules")
