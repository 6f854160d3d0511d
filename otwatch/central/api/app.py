"""The central HTTP API (FastAPI; OpenAPI at ``/openapi.json`` for readers).

Everything is JSON under ``/api/v1`` except the CSV export and PCAP downloads. Alert lists
take the portal's filters as query parameters; bulk changes return one result per id, like
``otwatch alerts`` on the sensor. Changes are applied to central's copy at once and become
commands to the sensor that owns the alert (``otwatch.central.commands``), audited with the
caller's name (``token:NAME`` or ``user:NAME``). Comments are recorded centrally and sent to
the sensor like other triage (a step beyond the spec). Unlearn, mute and unmute are
sensor-only (spec section 2): the API answers 409 with that reason. The web portal's parts
(sign-in, preferences, security headers, pages) are installed by ``api.portal``.

``create_app`` only assembles: it puts what routes depend on into ``app.state`` (read through
``otwatch.central.api.deps``) and includes one ``APIRouter`` per concern, each a module of
this package: ``auth`` (whoami), ``sensors``, ``alerts`` (read, export), ``triage``,
``pcap``, ``forwarding`` and ``devices``. To add a concern, write a module with
``router = APIRouter(tags=[...])`` whose
routes take ``Reader``/``Admin``, ``Store``, ``CommanderDep``... from ``deps``, and add one
line to ``ROUTERS`` (JSON under ``/api/v1``) or one ``app.include_router(module.router)``
below (its own paths, e.g. the portal's pages). Routers are included in order, so a fixed
path (``/alerts/groups``) must come before a parametrised one (``/alerts/{alert_id}``).
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from otwatch import __version__
from otwatch.central.api import alerts, auth, devices, forwarding, pcap, sensors, triage
from otwatch.central.api.deps import API, Commander, LocalCommander
from otwatch.central.api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from otwatch.central.api.portal import install_portal
from otwatch.central.api.preauth import AuthBeforeBody
from otwatch.central.api.sessions import PortalState
from otwatch.central.pcap_requests import PcapRequests, Progress
from otwatch.central.pcapstore import PcapStore
from otwatch.central.store.db import CentralStore, CentralStoreError
from otwatch.errors import OtwatchError

__all__ = ["ROUTERS", "Commander", "LocalCommander", "create_app"]

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    sensors.router,
    alerts.router,
    triage.router,
    pcap.router,
    forwarding.router,
    devices.router,
)
"""The JSON API's routers, included under ``API`` in this order."""


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    code = 503 if isinstance(exc, CentralStoreError) else 400
    return JSONResponse({"detail": str(exc)}, status_code=code)


def create_app(
    store: CentralStore,
    commander: Commander,
    pcaps: PcapStore | None = None,
    *,
    progress: Progress | None = None,
    portal: PortalState | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The API over ``store``; ``commander`` queues commands (``CentralService`` or
    ``LocalCommander``); ``progress(request_id)`` reports PCAP chunks received/total."""
    app = FastAPI(
        title="otwatch central API",
        version=__version__,
        description=(
            "Alerts of every sensor: list, filter, group, export, triage (status, severity, "
            "learn) and PCAP on demand. Authenticate with 'Authorization: Bearer <token>' "
            "(otwatch central token create). Central alert ids are "
            "'<sensor alert id>-<sensor id>'."
        ),
        docs_url=None,  # see api.portal: /docs needs a CDN; /openapi.json needs a reader
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(AuthBeforeBody)  # the token is checked before any body is read
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # outermost: 413 before all else
    app.state.store = store
    app.state.commander = commander
    app.state.pcaps = pcaps
    app.state.pcap_requests = PcapRequests(store, pcaps, progress, file_url=f"{API}/pcap/{{}}/file")
    app.add_exception_handler(OtwatchError, _domain_error)
    for router in ROUTERS:
        app.include_router(router, prefix=API)
    install_portal(app, portal)
    return app
