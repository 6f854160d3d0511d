"""Everything the web portal adds to central's app, installed by ``create_app`` in one call:
security headers, sign-in routes, preferences, the OpenAPI schema behind authentication and,
when the package is there, the portal's pages (``otwatch.central.portal.routes``).

FastAPI's ``/docs`` and ``/redoc`` pages are not served: they load Swagger UI/ReDoc from a
CDN (plants are air-gapped) and run inline script that the CSP forbids. ``/openapi.json``
needs a reader (token or session), like the rest of the API.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from otwatch.central.api import auth_routes, prefs
from otwatch.central.api.auth import Caller, require_reader
from otwatch.central.api.headers import SecurityHeaders
from otwatch.central.api.sessions import PortalState

__all__ = ["PAGES_MODULE", "install_portal"]

PAGES_MODULE = "otwatch.central.portal.routes"


def install_portal(app: FastAPI, state: PortalState | None = None) -> None:
    app.state.portal = state or PortalState()
    app.add_middleware(SecurityHeaders)
    app.include_router(auth_routes.router)
    app.include_router(prefs.router)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_caller: Annotated[Caller, Depends(require_reader)]) -> dict[str, Any]:
        return app.openapi()

    if _exists(PAGES_MODULE):
        app.include_router(importlib.import_module(PAGES_MODULE).router)


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False
