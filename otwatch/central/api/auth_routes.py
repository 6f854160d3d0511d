"""Sign-in and sign-out of portal users (``/auth/login``, ``/auth/logout``).

Sign-in answers the same 401 for an unknown user, a wrong password and a disabled user.
Repeated failures per user name and per client address are refused with 429 and
``Retry-After`` for a growing time (``throttle``), before any password is checked.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from otwatch.central.api.auth import Caller, require_user
from otwatch.central.api.sessions import COOKIE, portal_state
from otwatch.central.store.portal_sessions import end_session, prune_sessions, start_session
from otwatch.central.store.users import MAX_PASSWORD, UserInfo, authenticate

__all__ = ["WRONG_LOGIN", "router"]

WRONG_LOGIN = "wrong user name or password"
router = APIRouter(prefix="/auth", tags=["auth"])


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD)


class LoginAnswer(BaseModel):
    name: str
    role: str
    csrf_token: str


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _sign_in(request: Request, body: LoginBody, now: int) -> tuple[UserInfo, str, str] | None:
    store = request.app.state.store
    user = authenticate(store, body.username, body.password, now)
    if user is None:
        return None
    with store.session() as s:
        prune_sessions(s, now)
        secret, csrf = start_session(s, user.id, now, portal_state(request).limits)
    return user, secret, csrf


@router.post(
    "/login",
    response_model=LoginAnswer,
    responses={401: {"description": WRONG_LOGIN}, 429: {"description": "Too many failures"}},
)
async def login(body: LoginBody, request: Request, response: Response) -> LoginAnswer:
    """Sign in: sets the ``otwatch_session`` cookie and returns the CSRF token to send in
    ``X-CSRF-Token`` with every change."""
    portal = portal_state(request)
    keys = portal.throttle.keys(body.username, _client(request))
    now = portal.clock()
    wait = portal.throttle.wait_s(keys, now / 1e9)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed sign-ins: try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    signed = await run_in_threadpool(_sign_in, request, body, now)
    if signed is None:
        portal.throttle.failed(keys, now / 1e9)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, WRONG_LOGIN)
    user, secret, csrf = signed
    portal.throttle.succeeded(body.username)
    response.set_cookie(
        COOKIE,
        secret,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return LoginAnswer(name=user.name, role=user.role.value, csrf_token=csrf)


def _sign_out(request: Request) -> None:
    with request.app.state.store.session() as s:
        end_session(s, request.cookies.get(COOKIE, ""))


@router.post("/logout", status_code=204, response_class=Response)
async def logout(request: Request, _caller: Annotated[Caller, Depends(require_user)]) -> Response:
    """Sign out (a portal session, not a token): the session is deleted on the server."""
    await run_in_threadpool(_sign_out, request)
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return response
