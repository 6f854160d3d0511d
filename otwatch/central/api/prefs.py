"""``/api/v1/prefs/{key}``: a signed-in user's preferences (the portal's grid columns, ...)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from otwatch.central.api.auth import Caller, require_user
from otwatch.central.api.sessions import portal_state
from otwatch.central.store.prefs import get_pref, put_pref

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/prefs", tags=["portal"])
User = Annotated[Caller, Depends(require_user)]


class PrefValue(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: Any = None


def _user_id(caller: Caller) -> int:
    """The signed-in user's id (``require_user`` lets only portal sessions through)."""
    assert caller.user_id is not None  # sessions always carry the user id
    return caller.user_id


@router.get("/{key}", response_model=PrefValue)
def read_pref(key: str, request: Request, caller: User) -> PrefValue:
    """The stored value (``null`` when never set)."""
    with request.app.state.store.session() as s:
        return PrefValue(value=get_pref(s, _user_id(caller), key))


def _write(request: Request, caller: Caller, key: str, value: Any) -> None:
    with request.app.state.store.session() as s:
        put_pref(s, _user_id(caller), key, value, portal_state(request).clock())


@router.put("/{key}", response_model=PrefValue)
async def write_pref(key: str, body: PrefValue, request: Request, caller: User) -> PrefValue:
    """Store a JSON value of at most 16 KiB under ``key``."""
    await run_in_threadpool(_write, request, caller, key, body.value)
    return body
