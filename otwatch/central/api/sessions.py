"""Portal sessions on requests: the signed-in user behind the ``otwatch_session`` cookie.

``session_user(request)`` is what page routes and the API's authentication use. It reads
the database once per request (the answer is kept on ``request.state``), so call it from a
sync route or a thread, not from the event loop. ``PortalState`` (``app.state.portal``)
holds the session limits, the sign-in throttle and the clock; tests replace the clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from otwatch.central.api.throttle import LoginThrottle
from otwatch.central.store.portal_sessions import SessionLimits, resolve_session
from otwatch.central.store.tokens import ApiRole

__all__ = ["COOKIE", "CSRF_HEADER", "PortalState", "SessionUser", "portal_state", "session_user"]

COOKIE = "otwatch_session"
CSRF_HEADER = "X-CSRF-Token"
_UNSET = object()


@dataclass(slots=True)
class PortalState:
    limits: SessionLimits = field(default_factory=SessionLimits)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    clock: Callable[[], int] = time.time_ns
    """Wall clock in ns (sessions' expiry, throttling)."""


@dataclass(frozen=True, slots=True)
class SessionUser:
    name: str
    role: ApiRole
    csrf_token: str
    user_id: int

    @property
    def is_admin(self) -> bool:
        return self.role == ApiRole.ADMIN


def portal_state(request: Request) -> PortalState:
    return request.app.state.portal


def session_user(request: Request) -> SessionUser | None:
    """The user signed in with this request's session cookie, or None (no cookie, unknown,
    expired, or the user is disabled)."""
    cached = getattr(request.state, "session_user", _UNSET)
    if cached is None or isinstance(cached, SessionUser):  # looked up earlier in this request
        return cached
    user = None
    secret = request.cookies.get(COOKIE)
    if secret:
        portal = portal_state(request)
        with request.app.state.store.session() as s:
            info = resolve_session(s, secret, portal.clock(), portal.limits)
        if info is not None:
            user = SessionUser(info.name, info.role, info.csrf_token, info.user_id)
    request.state.session_user = user
    return user
