"""Who is calling the central API (a Bearer token or a portal session) and the two roles.

``reader``: view and export. ``admin``: also change status and severity, learn, comment and
pull PCAPs (spec section 5: portal Security Reader vs Security Admin). A Bearer token wins
over a session cookie. With the cookie, unsafe methods need the session's CSRF token in
``X-CSRF-Token`` (a forged cross-site form cannot read it); the token alone never
authenticates. No credentials, or an unknown/expired one, is 401; a reader asking for an
admin action is 403.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from otwatch.central.api.sessions import COOKIE, CSRF_HEADER, session_user
from otwatch.central.store.db import CentralStore
from otwatch.central.store.tokens import ApiRole, verify_token

__all__ = ["CSRF_REFUSED", "Caller", "require_admin", "require_reader", "require_user", "router"]

_bearer = HTTPBearer(auto_error=False, description="An API token: otwatch central token create")
_cookie = APIKeyCookie(
    name=COOKIE, auto_error=False, description="A portal session (POST /auth/login)"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_REFUSED = "CSRF token missing or wrong"


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: ApiRole
    kind: Literal["token", "user"] = "token"
    csrf_token: str | None = None
    """Sessions only."""
    user_id: int | None = None
    """Sessions only."""

    @property
    def actor(self) -> str:
        """The audit actor of this caller's changes (the sensor sees ``central:`` + it)."""
        return f"{self.kind}:{self.name}"


def _verify(store: CentralStore, token: str) -> Caller | None:
    with store.session() as session:
        info = verify_token(session, token)
    return None if info is None else Caller(info.name, info.role)


def check_csrf(request: Request, expected: str) -> None:
    """403 unless an unsafe request carries the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, CSRF_REFUSED)


async def _from_session(request: Request) -> Caller:
    user = await run_in_threadpool(session_user, request)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "your session has ended or is unknown: sign in again"
        )
    check_csrf(request, user.csrf_token)
    return Caller(user.name, user.role, "user", user.csrf_token, user.user_id)


async def require_reader(
    request: Request,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_cookie)],
) -> Caller:
    if creds is None and cookie:
        return await _from_session(request)
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token: send 'Authorization: Bearer <token>' or sign in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    caller = await run_in_threadpool(_verify, request.app.state.store, creds.credentials)
    if caller is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid or revoked API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


async def require_admin(caller: Annotated[Caller, Depends(require_reader)]) -> Caller:
    if caller.role != ApiRole.ADMIN:
        what = "token" if caller.kind == "token" else "user"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{what} {caller.name!r} has role reader: changing alerts, commenting and pulling "
            f"PCAPs needs an admin {what}",
        )
    return caller


async def require_user(caller: Annotated[Caller, Depends(require_reader)]) -> Caller:
    """A signed-in portal user (preferences belong to users, not tokens)."""
    if caller.kind != "user":
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "this needs a signed-in portal user, not an API token"
        )
    return caller


router = APIRouter(tags=["auth"])


@router.get("/whoami")
def whoami(caller: Annotated[Caller, Depends(require_reader)]) -> dict[str, str]:
    """The caller's name, role and kind (token or user); a session's CSRF token."""
    out = {"name": caller.name, "role": caller.role.value, "kind": caller.kind}
    return out | ({"csrf_token": caller.csrf_token} if caller.csrf_token else {})
