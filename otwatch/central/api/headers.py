"""Security headers on every response of central's HTTP listener (API and portal pages).

The Content-Security-Policy allows only central's own scripts, styles and images (no inline
script or ``style=`` attribute, no framing, no foreign form targets), so attacker-controlled
alert text that slipped into a page could still not run. Everything except the portal's
``/static/`` assets is ``Cache-Control: no-store``: alert data must not stay in browser or
proxy caches. A header a route set itself is kept.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSP", "SecurityHeaders"]

CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
_ALWAYS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
_CACHEABLE_PREFIX = "/static/"


class SecurityHeaders:
    """Pure ASGI middleware (streams, such as the CSV export, pass through untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(_ALWAYS)
        if not scope.get("path", "").startswith(_CACHEABLE_PREFIX):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((k, v) for k, v in extra if k not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
