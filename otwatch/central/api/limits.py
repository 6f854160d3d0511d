"""Request bodies are bounded before anyone reads them (ASGI middleware).

A body announced larger than the limit (``Content-Length``) is answered 413 at once, unread;
a body without a length (chunked) is counted as it streams in and the request ends with 413
as soon as it passes the limit. Everything the API takes (alert ids, a status) fits in a few
kilobytes; the default limit is 1 MiB (``[central] max_request_body``). Without this bound a
single unauthenticated 300 MB POST grew central by 800 MB before its 401 (issue 15).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

__all__ = ["DEFAULT_MAX_BODY_BYTES", "BodyLimit", "BodyTooLarge"]

DEFAULT_MAX_BODY_BYTES = 1 << 20

Scope = dict[str, Any]


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit. An ``HTTPException``
    so that FastAPI, reading the body for a route, passes it on (other errors while reading
    become 400) and the app answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _detail(limit), headers={"Connection": "close"})


def _detail(limit: int) -> str:
    return f"request body over the {limit}-byte limit (max_request_body)"


def _too_large(limit: int) -> tuple[dict[str, Any], dict[str, Any]]:
    body = json.dumps({"detail": _detail(limit)}).encode()
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes``, before it is read."""

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.max_bytes:
            for message in _too_large(self.max_bytes):
                await send(message)
            return
        seen = 0
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge:
            if started:
                raise
            for message in _too_large(self.max_bytes):
                await send(message)
