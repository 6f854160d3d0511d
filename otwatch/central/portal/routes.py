"""The portal's pages and assets, as one ``APIRouter`` that ``create_app`` includes.

Pages are shells: the template renders the layout, the signed-in user and the CSRF token;
the page's ES module then fetches everything from ``/api/v1`` with the session cookie. So
there is one implementation of every action (the API), and alert text is only ever put into
the page by the browser's ``textContent`` (attacker-controlled text stays inert). A page
without a valid session redirects to ``/login?next=<the page>``.

Assets are a fixed set read from ``static/`` at import time: ``/static/<name>`` serves only
those files (no path from the request reaches the file system).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from otwatch import __version__
from otwatch.central.api.sessions import session_user

__all__ = ["router", "safe_next"]

HERE = Path(__file__).parent
_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_ASSETS = {
    path.relative_to(HERE / "static").as_posix(): path
    for path in sorted((HERE / "static").rglob("*"))
    if path.is_file() and path.suffix in _MEDIA_TYPES
}
_templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)
DEFAULT_PAGE = "/alerts"

router = APIRouter(include_in_schema=False)


def safe_next(value: str | None) -> str:
    """A local path to go to after sign-in; anything else (another host, ``//host``, a
    scheme, a backslash trick) becomes the Alerts page."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return DEFAULT_PAGE
    if any(c in value for c in "\\\r\n\t") or value.startswith("/login"):
        return DEFAULT_PAGE
    return value


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _render(name: str, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(version=__version__, **context)
    return HTMLResponse(html)


def _page(request: Request, template: str, title: str, **context: Any) -> Response:
    user = session_user(request)
    if user is None:
        return RedirectResponse(f"/login?next={quote(_here(request), safe='')}", status_code=303)
    role = str(getattr(user.role, "value", user.role))
    return _render(template, user=user, role=role, title=title, page=template, **context)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse(DEFAULT_PAGE, status_code=303)


@router.get("/login")
def login(request: Request, next: str | None = None) -> Response:
    target = safe_next(next)
    if session_user(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _render("login.html", title="Sign in", next=target)


@router.get("/alerts")
def alerts_page(request: Request) -> Response:
    return _page(request, "alerts.html", "Alerts")


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, alert_id: str) -> Response:
    return _page(request, "alert.html", "Alert details", alert_id=alert_id[:100])


@router.get("/sensors")
def sensors_page(request: Request) -> Response:
    return _page(request, "sensors.html", "Sensors")


@router.get("/devices")
def devices_page(request: Request) -> Response:
    return _page(request, "devices.html", "Devices")


@router.get("/devices/{device_id}")
def device_page(request: Request, device_id: str) -> Response:
    return _page(request, "device.html", "Device", device_id=device_id[:100])


@router.get("/static/{name:path}")
def asset(name: str) -> FileResponse:
    path = _ASSETS.get(name)
    if path is None:
        raise HTTPException(404, "no such asset")
    return FileResponse(
        path, media_type=_MEDIA_TYPES[path.suffix], headers={"Cache-Control": "no-cache"}
    )
