"""Authentication before the body (ASGI middleware).

FastAPI reads and parses a request's body before it resolves the route's dependencies, so
the bearer token of a POST was checked only after its body had been read. This middleware
runs the API's own check (``require_reader``: 401 for a missing, unknown or revoked token or
portal session; 403 for a session's change without its CSRF token) first for every request
that can carry a body to ``/api/``; the route then checks the role as before. An
unauthenticated client can thus make central read no body at all.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import Request
from starlette.responses import JSONResponse

from otwatch.central.api.auth import require_reader
from otwatch.central.api.sessions import COOKIE

__all__ = ["AuthBeforeBody"]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if not scheme or not token:
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())


class AuthBeforeBody:
    """ASGI middleware: 401 before the body is read for an API request without a valid
    token."""

    def __init__(self, app: Any, prefix: str = "/api/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and scope["path"].startswith(self.prefix)
        ):
            request = Request(scope)
            try:
                # a portal session (cookie, with its CSRF check) counts like a token
                await require_reader(request, _credentials(request), request.cookies.get(COOKIE))
            except HTTPException as exc:
                response = JSONResponse(
                    {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
