"""API tokens: created with a role, shown once, stored as SHA-256, revocable.

A token is ``otw_`` + 32 random bytes (URL-safe base64), so a plain SHA-256 is enough (no
salt or slow hash needed for 256 bits of entropy). Lookup is by digest; the digest is then
compared in constant time, so the check does not leak through timing which prefix matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from otwatch.central.store.models_api import ApiToken
from otwatch.errors import OtwatchError

__all__ = [
    "PREFIX",
    "ApiRole",
    "TokenError",
    "TokenInfo",
    "create_token",
    "digest",
    "list_tokens",
    "revoke_token",
    "verify_token",
]

PREFIX = "otw_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_LAST_USED_STEP_NS = 60 * 1_000_000_000


class ApiRole(StrEnum):
    READER = "reader"
    """View and export alerts."""
    ADMIN = "admin"
    """Also change status and severity, learn, and pull PCAPs."""


class TokenError(OtwatchError):
    """A token cannot be created, found or revoked."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: int
    name: str
    role: ApiRole
    created_ns: int
    revoked_ns: int | None
    last_used_ns: int | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenInfo:
        return cls(
            row.id, row.name, ApiRole(row.role), row.created_ns, row.revoked_ns, row.last_used_ns
        )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def create_token(session: Session, name: str, role: str, now: int | None = None) -> str:
    """Store a new token and return its secret (the only time it is available)."""
    if not NAME.match(name):
        raise TokenError(
            f"invalid token name {name!r}: letters, digits and _.@- only, at most 64 characters"
        )
    try:
        role = ApiRole(role)
    except ValueError:
        raise TokenError(f"invalid role {role!r}: choose reader or admin") from None
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise TokenError(f"a token named {name!r} exists already (revoke it or pick a new name)")
    secret = PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            role=role.value,
            token_sha256=digest(secret),
            created_ns=time.time_ns() if now is None else now,
        )
    )
    try:
        session.flush()
    except IntegrityError:
        raise TokenError(f"a token named {name!r} exists already") from None
    return secret


def list_tokens(session: Session) -> list[TokenInfo]:
    return [TokenInfo.of(r) for r in session.scalars(select(ApiToken).order_by(ApiToken.name))]


def revoke_token(session: Session, name: str, now: int | None = None) -> bool:
    """Revoke the named token; False when it was already revoked. Unknown name: TokenError."""
    row = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if row is None:
        raise TokenError(f"no token named {name!r}")
    if row.revoked_ns is not None:
        return False
    row.revoked_ns = time.time_ns() if now is None else now
    return True


def verify_token(session: Session, token: str, now: int | None = None) -> TokenInfo | None:
    """The live token with this secret, or None (unknown, malformed or revoked)."""
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    wanted = digest(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == wanted))
    if row is None or not hmac.compare_digest(row.token_sha256, wanted):
        return None
    if row.revoked_ns is not None:
        return None
    now = time.time_ns() if now is None else now
    if row.last_used_ns is None or now - row.last_used_ns > _LAST_USED_STEP_NS:
        row.last_used_ns = now
    return TokenInfo.of(row)
