"""Portal users: local accounts with a role and an argon2id password hash.

Passwords are hashed with argon2id (``argon2-cffi``'s default parameters, the RFC 9106
low-memory profile: 64 MiB, 3 passes), so a stolen database is slow to attack. Checking a
password takes ~0.15 s of CPU: ``authenticate`` reads the hash in one short transaction and
verifies it outside any. An unknown or disabled user costs the same time as a wrong
password, so the answer does not tell which names exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otwatch.central.store.db import CentralStore
from otwatch.central.store.models_portal import PortalSession, PortalUser
from otwatch.central.store.tokens import NAME, ApiRole
from otwatch.errors import OtwatchError

__all__ = [
    "MIN_PASSWORD",
    "UserError",
    "UserInfo",
    "add_user",
    "authenticate",
    "check_password",
    "find_user",
    "list_users",
    "reset_password",
    "set_disabled",
    "set_role",
]

MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_hasher = PasswordHasher()


class UserError(OtwatchError):
    """A user cannot be created, found or changed."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    name: str
    role: ApiRole
    disabled: bool
    created_ns: int
    last_login_ns: int | None

    @classmethod
    def of(cls, row: PortalUser) -> UserInfo:
        return cls(
            row.id, row.name, ApiRole(row.role), row.disabled, row.created_ns, row.last_login_ns
        )


@cache
def _dummy_hash() -> str:
    return _hasher.hash("otwatch: no such user")


def check_password(password: str) -> None:
    """Refuse passwords that are too short or too long (UserError)."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password is too long: at most {MAX_PASSWORD} characters")


def _role(role: str) -> ApiRole:
    try:
        return ApiRole(role)
    except ValueError:
        raise UserError(f"invalid role {role!r}: choose reader or admin") from None


def _row(session: Session, name: str) -> PortalUser:
    row = session.scalar(select(PortalUser).where(PortalUser.name == name))
    if row is None:
        raise UserError(f"no user named {name!r}")
    return row


def find_user(session: Session, name: str) -> UserInfo | None:
    row = session.scalar(select(PortalUser).where(PortalUser.name == name))
    return None if row is None else UserInfo.of(row)


def add_user(
    session: Session, name: str, role: str, password: str, now: int | None = None
) -> UserInfo:
    if not NAME.match(name):
        raise UserError(
            f"invalid user name {name!r}: letters, digits and _.@- only, at most 64 characters"
        )
    role_ = _role(role)
    check_password(password)
    if session.scalar(select(PortalUser.id).where(PortalUser.name == name)) is not None:
        raise UserError(f"a user named {name!r} exists already")
    row = PortalUser(
        name=name,
        role=role_.value,
        password_hash=_hasher.hash(password),
        disabled=False,
        created_ns=time.time_ns() if now is None else now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise UserError(f"a user named {name!r} exists already") from None
    return UserInfo.of(row)


def list_users(session: Session) -> list[UserInfo]:
    return [UserInfo.of(r) for r in session.scalars(select(PortalUser).order_by(PortalUser.name))]


def _end_sessions(session: Session, user_id: int) -> None:
    session.execute(delete(PortalSession).where(PortalSession.user_id == user_id))


def set_role(session: Session, name: str, role: str) -> bool:
    """Change the role (effective on the user's next request); False when it was so."""
    row, role_ = _row(session, name), _role(role)
    if row.role == role_.value:
        return False
    row.role = role_.value
    return True


def set_disabled(session: Session, name: str, disabled: bool = True) -> bool:
    """Disable (ending every session of the user) or enable; False when it was so."""
    row = _row(session, name)
    if row.disabled == disabled:
        return False
    row.disabled = disabled
    if disabled:
        _end_sessions(session, row.id)
    return True


def reset_password(session: Session, name: str, password: str) -> None:
    """Set a new password and end every session signed in with the old one."""
    row = _row(session, name)
    check_password(password)
    row.password_hash = _hasher.hash(password)
    _end_sessions(session, row.id)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate(store: CentralStore, name: str, password: str, now: int) -> UserInfo | None:
    """The enabled user with this name and password, or None (its last login is recorded)."""
    with store.session() as session:
        row = session.scalar(select(PortalUser).where(PortalUser.name == name))
        stored = row.password_hash if row is not None else None
    ok = _verify(stored or _dummy_hash(), password[:MAX_PASSWORD]) and stored is not None
    if not ok or row is None or row.disabled:
        return None
    with store.session() as session:
        row = session.get(PortalUser, row.id)
        if row is None or row.disabled or row.password_hash != stored:
            return None  # disabled or reset while the hash was checked
        row.last_login_ns = now
        if _hasher.check_needs_rehash(stored):
            row.password_hash = _hasher.hash(password)
        return UserInfo.of(row)
