"""Portal sign-in sessions: started at sign-in, ended at sign-out or after their limits.

A session id is 32 random bytes (URL-safe base64) sent as a cookie; only its SHA-256 is
stored. A session ends after ``idle`` without use or ``absolute`` after sign-in, whichever
comes first, or when its user is disabled or gets a new password. The idle limit is moved
forward at most once per ``TOUCH_STEP_NS`` (not one write per request), so a session may
end up to that much before its idle limit.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from otwatch.central.store.models_portal import PortalSession, PortalUser
from otwatch.central.store.tokens import ApiRole, digest
from otwatch.dbcommon import rowcount

__all__ = [
    "TOUCH_STEP_NS",
    "SessionInfo",
    "SessionLimits",
    "end_session",
    "prune_sessions",
    "resolve_session",
    "start_session",
]

TOUCH_STEP_NS = 60 * 1_000_000_000
_MAX_ID = 200


@dataclass(frozen=True, slots=True)
class SessionLimits:
    idle_ns: int = 30 * 60 * 1_000_000_000
    absolute_ns: int = 12 * 3600 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class SessionInfo:
    user_id: int
    name: str
    role: ApiRole
    csrf_token: str
    expires_ns: int


def start_session(
    session: Session, user_id: int, now: int, limits: SessionLimits
) -> tuple[str, str]:
    """Store a new session; returns its id (the cookie value) and its CSRF token."""
    secret = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + limits.absolute_ns
    session.add(
        PortalSession(
            id_sha256=digest(secret),
            user_id=user_id,
            csrf_token=csrf,
            created_ns=now,
            last_seen_ns=now,
            idle_expires_ns=min(now + limits.idle_ns, expires),
            expires_ns=expires,
        )
    )
    return secret, csrf


def resolve_session(
    session: Session, secret: str, now: int, limits: SessionLimits
) -> SessionInfo | None:
    """The live session with this id and its enabled user, or None; an expired session is
    deleted when it is seen."""
    if not secret or len(secret) > _MAX_ID:
        return None
    wanted = digest(secret)
    found = session.execute(
        select(PortalSession, PortalUser)
        .join(PortalUser, PortalUser.id == PortalSession.user_id)
        .where(PortalSession.id_sha256 == wanted)
    ).first()
    if found is None:
        return None
    row, user = found
    if not hmac.compare_digest(row.id_sha256, wanted):
        return None
    if now >= row.idle_expires_ns or now >= row.expires_ns or user.disabled:
        session.delete(row)
        return None
    if now - row.last_seen_ns >= TOUCH_STEP_NS:
        row.last_seen_ns = now
        row.idle_expires_ns = min(now + limits.idle_ns, row.expires_ns)
    return SessionInfo(user.id, user.name, ApiRole(user.role), row.csrf_token, row.expires_ns)


def end_session(session: Session, secret: str) -> bool:
    """Delete the session (sign-out); False when there was none."""
    if not secret or len(secret) > _MAX_ID:
        return False
    result = session.execute(delete(PortalSession).where(PortalSession.id_sha256 == digest(secret)))
    return bool(rowcount(result))


def prune_sessions(session: Session, now: int) -> int:
    """Delete every session past one of its limits; returns how many."""
    result = session.execute(
        delete(PortalSession).where(
            or_(PortalSession.idle_expires_ns <= now, PortalSession.expires_ns <= now)
        )
    )
    return rowcount(result)
