"""Bearer-token authentication and the two roles of the central API.

``reader``: view and export. ``admin``: also change status and severity, learn, and pull
PCAPs (spec section 5: portal Security Reader vs Security Admin). A missing or unknown token
is 401; a reader asking for an admin action is 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from otwatch.central.store.db import CentralStore
from otwatch.central.store.tokens import ApiRole, verify_token

__all__ = ["Caller", "require_admin", "require_reader", "router"]

_bearer = HTTPBearer(auto_error=False, description="An API token: otwatch central token create")


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    role: ApiRole

    @property
    def actor(self) -> str:
        """The audit actor of this caller's changes."""
        return f"token:{self.name}"


def _verify(store: CentralStore, token: str) -> Caller | None:
    with store.session() as session:
        info = verify_token(session, token)
    return None if info is None else Caller(info.name, info.role)


async def require_reader(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    if creds is None or creds.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API token: send 'Authorization: Bearer <token>'",
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
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"token {caller.name!r} has role reader: changing alerts and pulling PCAPs "
            "needs an admin token",
        )
    return caller


router = APIRouter(tags=["auth"])


@router.get("/whoami")
def whoami(caller: Annotated[Caller, Depends(require_reader)]) -> dict[str, str]:
    return {"name": caller.name, "role": caller.role.value}
