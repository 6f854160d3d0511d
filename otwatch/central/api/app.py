"""The central HTTP API (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``).

Everything is JSON under ``/api/v1`` except the CSV export and PCAP downloads. Alert lists
take the portal's filters as query parameters (repeat a parameter or comma-separate values);
bulk changes return one result per id, like ``otwatch alerts`` on the sensor. Changes are
applied to central's copy at once and become commands to the sensor that owns the alert
(through ``CentralSync.issue_command``), audited with the token's name. Unlearn, mute, unmute
and comments are sensor-only (spec section 2): the API answers 409 with that reason.
"""

from __future__ import annotations

import io
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, Protocol

from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from otwatch import __version__
from otwatch.alerts.catalog import Engine, Severity
from otwatch.alerts.views import GROUP_BY, AlertFilter, QueryError, alerts_to_csv
from otwatch.central import alertviews as views
from otwatch.central.api.auth import Caller, require_admin, require_reader
from otwatch.central.api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from otwatch.central.api.preauth import AuthBeforeBody
from otwatch.central.ingest import CommandRefused, IssueResult
from otwatch.central.pcapstore import PcapStore
from otwatch.central.store import alerts as alert_store
from otwatch.central.store.db import CentralStore, CentralStoreError
from otwatch.central.store.models import Command, Sensor
from otwatch.central.store.models_api import PcapRequest
from otwatch.errors import OtwatchError
from otwatch.timeutil import format_iso, parse_time_ns

__all__ = ["Commander", "LocalCommander", "create_app"]

API = "/api/v1"
STATUSES = ("new", "active", "closed")
_PENDING_REUSE_NS = 3600 * 1_000_000_000
_STALLED_NS = 10 * 60 * 1_000_000_000
MAX_IDS = 1000


class Commander(Protocol):
    async def issue_command(self, sensor_id: str, kind: str, **kwargs: Any) -> IssueResult: ...


class LocalCommander:
    """Issues commands on a ``CentralSync`` without MQTT (tests; an API-only process): they
    stay pending in the database and are sent by whichever instance is connected."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._lock = threading.Lock()

    def _issue(self, sensor_id: str, kind: str, kwargs: dict[str, Any]) -> IssueResult:
        with self._lock:
            return self.engine.issue_command(sensor_id, kind, **kwargs)

    async def issue_command(self, sensor_id: str, kind: str, **kwargs: Any) -> IssueResult:
        return await run_in_threadpool(self._issue, sensor_id, kind, kwargs)


# -- request and response bodies ----------------------------------------------------------


class IdsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown key is a 422, not ignored

    ids: list[str] = Field(min_length=1, max_length=MAX_IDS, description="Central alert ids")


class StatusBody(IdsBody):
    status: Literal["new", "active", "closed"]


class SeverityBody(IdsBody):
    severity: Literal["low", "medium", "high"]


class ActionResult(BaseModel):
    alert_id: str
    outcome: str = Field(description="applied, unchanged, refused or not_found")
    message: str
    commands: list[str] = []


class ActionResults(BaseModel):
    results: list[ActionResult]


Reader = Annotated[Caller, Depends(require_reader)]
Admin = Annotated[Caller, Depends(require_admin)]


# -- filters ------------------------------------------------------------------------------


def _values(values: list[str] | None, allowed: tuple[str, ...] | None = None, name: str = ""):
    out = tuple(v.strip() for value in values or () for v in value.split(",") if v.strip())
    if allowed is not None:
        out = tuple(v.lower() for v in out)
        bad = [v for v in out if v not in allowed]
        if bad:
            raise QueryError(f"invalid {name} {', '.join(bad)}: choose from {', '.join(allowed)}")
    return out


def _time(value: str | None) -> int | None:
    return None if value is None else parse_time_ns(value)


def alert_filter(
    status_: Annotated[
        list[str] | None, Query(alias="status", description="new, active, closed")
    ] = None,
    severity: Annotated[list[str] | None, Query(description="low, medium, high")] = None,
    engine: Annotated[list[str] | None, Query(description="Engine (policy_violation, ...)")] = None,
    category: Annotated[list[str] | None, Query()] = None,
    sensor: Annotated[list[str] | None, Query()] = None,
    site: Annotated[list[str] | None, Query()] = None,
    zone: Annotated[list[str] | None, Query()] = None,
    protocol: Annotated[list[str] | None, Query()] = None,
    type_: Annotated[list[str] | None, Query(alias="type", description="Alert type id")] = None,
    source: Annotated[str | None, Query(max_length=64, description="Source IP or MAC")] = None,
    destination: Annotated[
        str | None, Query(max_length=64, description="Destination IP or MAC")
    ] = None,
    search: Annotated[
        str | None, Query(max_length=200, description="Text in name, message, ...")
    ] = None,
    since: Annotated[
        str | None, Query(description="Last detection at or after (ISO 8601 or 24h)")
    ] = None,
    until: Annotated[str | None, Query(description="First detection at or before")] = None,
) -> AlertFilter:
    return AlertFilter(
        statuses=_values(status_, STATUSES, "status"),
        severities=_values(severity, tuple(s.value for s in Severity), "severity"),
        engines=_values(engine, tuple(e.value for e in Engine), "engine"),
        categories=_values(category),
        sensors=_values(sensor),
        sites=_values(site),
        zones=_values(zone),
        protocols=tuple(p.lower() for p in _values(protocol)),
        types=tuple(t.lower() for t in _values(type_)),
        source=source or None,
        destination=destination or None,
        search=search or None,
        since_ns=_time(since),
        until_ns=_time(until),
    )


Filter = Annotated[AlertFilter, Depends(alert_filter)]


# -- the app ------------------------------------------------------------------------------


def create_app(
    store: CentralStore,
    commander: Commander,
    pcaps: PcapStore | None = None,
    *,
    progress: Callable[[str], tuple[int, int | None] | None] | None = None,
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
    )
    app.add_middleware(AuthBeforeBody)  # the token is checked before any body is read
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)  # outermost: 413 before all else
    app.state.store = store
    app.state.commander = commander
    app.state.pcaps = pcaps
    app.state.progress = progress or (lambda _rid: None)

    @app.exception_handler(OtwatchError)
    async def _domain_error(_request: Request, exc: OtwatchError) -> JSONResponse:
        code = 503 if isinstance(exc, CentralStoreError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=code)

    def session():
        return store.session()

    # -- reading ------------------------------------------------------------------------

    @app.get(f"{API}/whoami", tags=["auth"])
    def whoami(caller: Reader) -> dict[str, str]:
        return {"name": caller.name, "role": caller.role.value}

    @app.get(f"{API}/sensors", tags=["sensors"])
    def sensors(_caller: Reader) -> list[dict[str, Any]]:
        with session() as s:
            return [
                {
                    "sensor": x.id,
                    "site": x.site,
                    "zone": x.zone,
                    "online": x.online,
                    "last_seen": format_iso(x.last_seen_ns),
                    "version": x.version,
                    "health": x.health,
                }
                for x in s.scalars(select(Sensor).order_by(Sensor.id))
            ]

    @app.get(f"{API}/alerts", tags=["alerts"])
    def list_alerts(
        flt: Filter,
        _caller: Reader,
        sort: Annotated[str, Query(description="Sort key; '-' prefix: descending")] = (
            "-last_detection"
        ),
        limit: Annotated[int, Query(ge=1, le=views.MAX_LIMIT)] = 100,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> dict[str, Any]:
        """Filtered alerts, newest last detection first; page with limit/offset."""
        with session() as s:
            rows = views.list_alerts(s, flt, sort=sort, limit=limit, offset=offset)
        return {
            "alerts": rows,
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if len(rows) == limit else None,
        }

    @app.get(f"{API}/alerts/groups", tags=["alerts"])
    def group_alerts(
        by: Annotated[str, Query(description=f"One of {', '.join(GROUP_BY)}")],
        flt: Filter,
        _caller: Reader,
    ) -> dict[str, Any]:
        """Counts of the filtered alerts per value (the portal's Group by)."""
        with session() as s:
            groups = views.group_alerts(s, flt, by)
        return {"by": by, "groups": [{"value": v, "count": n} for v, n in groups]}

    @app.get(
        f"{API}/alerts/export.csv",
        tags=["alerts"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}}},
    )
    def export_csv(
        flt: Filter,
        _caller: Reader,
        sort: Annotated[str, Query()] = "-last_detection",
    ) -> StreamingResponse:
        """The filtered alerts as CSV (the spec's export columns, plus sensor/site/zone)."""
        with session() as s:  # fail early (bad sort) before the response starts
            views.list_alerts(s, flt, sort=sort, limit=1)

        def chunks() -> Iterator[str]:
            with session() as s:
                page: list[dict[str, Any]] = []
                first = True
                for row in views.export_rows(s, flt, sort):
                    page.append(row)
                    if len(page) >= 1000:
                        yield _csv(page, first)
                        page, first = [], False
                if page or first:
                    yield _csv(page, first)

        return StreamingResponse(
            chunks(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="alerts.csv"'},
        )

    @app.get(f"{API}/alerts/{{alert_id}}", tags=["alerts"])
    def show_alert(alert_id: str, _caller: Reader) -> dict[str, Any]:
        """Everything about one alert: fields, remediation, audit history, sensors."""
        with session() as s:
            alert = views.find_alert(s, alert_id)
            if alert is None:
                raise HTTPException(404, f"alert {alert_id} does not exist")
            return views.alert_details(s, alert)

    # -- triage -------------------------------------------------------------------------

    async def _act(ids: list[str], kind: str, value: str | None, caller: Caller):
        results = []
        for text in dict.fromkeys(ids):
            results.append(await _act_one(text, kind, value, caller))
        return ActionResults(results=results)

    def _targets(text: str) -> list[tuple[str, int]] | None:
        with session() as s:
            alert = views.find_alert(s, text)
            if alert is None:
                return None
            return [(m.sensor, m.alert_id) for m in views.members_of(s, alert)]

    async def _act_one(text: str, kind: str, value: str | None, caller: Caller) -> ActionResult:
        try:
            targets = await run_in_threadpool(_targets, text)
        except QueryError as exc:
            return ActionResult(alert_id=text, outcome="not_found", message=str(exc))
        if targets is None:
            return ActionResult(
                alert_id=text, outcome="not_found", message=f"alert {text} does not exist"
            )
        queued, unchanged, refused = [], [], []
        commands = []
        for sensor, alert_id in targets:
            try:
                result = await commander.issue_command(
                    sensor, kind, actor=caller.actor, alert_id=alert_id, value=value
                )
            except CommandRefused as exc:
                refused.append(str(exc))
                continue
            if result.outcome == "queued":
                queued.append(sensor)
                if result.command_id:
                    commands.append(result.command_id)
            else:
                unchanged.append(result.message)
        if queued:
            what = f"{kind} {value}" if value else kind
            message = f"alert {text}: {what} applied centrally, sent to sensor " + ", ".join(queued)
            if refused:
                message += f" (refused for the rest: {refused[0]})"
            return ActionResult(
                alert_id=text, outcome="applied", message=message, commands=commands
            )
        if refused:
            return ActionResult(alert_id=text, outcome="refused", message=refused[0])
        message = unchanged[0] if unchanged else f"alert {text} unchanged"
        return ActionResult(alert_id=text, outcome="unchanged", message=message)

    @app.post(f"{API}/alerts/status", tags=["triage"], response_model=ActionResults)
    async def set_status(body: StatusBody, caller: Admin):
        """Change the status of alerts (new, active or closed)."""
        return await _act(body.ids, "status", body.status, caller)

    @app.post(f"{API}/alerts/severity", tags=["triage"], response_model=ActionResults)
    async def set_severity(body: SeverityBody, caller: Admin):
        """Change the severity of alerts (low, medium or high)."""
        return await _act(body.ids, "severity", body.severity, caller)

    @app.post(f"{API}/alerts/learn", tags=["triage"], response_model=ActionResults)
    async def learn(body: IdsBody, caller: Admin):
        """Learn alerts (learnable types only): close them and allow their traffic."""
        return await _act(body.ids, "learn", None, caller)

    @app.post(
        f"{API}/alerts/{{action}}",
        tags=["triage"],
        status_code=409,
        responses={409: {"description": "Sensor-only action"}},
    )
    def sensor_only(
        action: Literal["unlearn", "mute", "unmute", "comment"],
        _caller: Reader,
        _body: Annotated[Any, Body()] = None,
    ) -> JSONResponse:
        """Unlearn, mute, unmute and comments exist on the sensor only (spec section 2)."""
        return JSONResponse(
            {
                "detail": f"{action} is only possible on the sensor (spec: sensor only); "
                f"run 'otwatch alerts {action}' on the sensor that detected the alert"
            },
            status_code=409,
        )

    # -- PCAP ---------------------------------------------------------------------------

    def _pcap_view(s: Any, row: PcapRequest) -> dict[str, Any]:
        now = time.time_ns()
        sensor = s.get(Sensor, row.sensor)
        online = bool(sensor and sensor.online)
        command = s.get(Command, row.command_id) if row.command_id else None
        state, message = row.state, row.reason or ""
        got = app.state.progress(row.request_id)
        if state == "done":
            path = pcaps.path(row.request_id) if pcaps is not None else None
            if path is None or not path.exists():
                state, message = "expired", "the cached file is gone; request it again"
            else:
                message = f"PCAP ready ({row.size} bytes, SHA-256 {row.sha256})"
        elif state == "pending":
            if not online:
                message = (
                    f"sensor {row.sensor} is offline: the request stays pending and "
                    "completes when the sensor returns"
                )
            elif command is not None and command.status == "applied":
                message = f"sensor {row.sensor} is sending the PCAP"
                if got is not None:
                    message += f" ({got[0]}/{got[1] or '?'} chunks)"
                if now - row.requested_ns > _STALLED_NS:
                    message += "; no progress for a long time, request it again if it stays so"
            else:
                message = f"waiting for sensor {row.sensor} to answer"
        elif state == "not_available":
            message = f"the sensor no longer has the PCAP: {row.reason}"
        return {
            "request_id": row.request_id,
            "id": f"{row.alert_id}-{row.sensor}",
            "sensor": row.sensor,
            "alert_id": row.alert_id,
            "state": state,
            "message": message,
            "sensor_online": online,
            "requested_by": row.requested_by,
            "requested": format_iso(row.requested_ns),
            "done": format_iso(row.done_ns),
            "expires": format_iso(row.expires_ns),
            "size": row.size,
            "sha256": row.sha256,
            "chunks_received": got[0] if got else None,
            "chunks_total": got[1] if got else None,
            "download": f"{API}/pcap/{row.request_id}/file" if state == "done" else None,
        }

    def _reuse(text: str) -> tuple[dict[str, Any] | None, tuple[str, int] | None]:
        now = time.time_ns()
        with session() as s:
            # the alert this id names, not its unified primary: the PCAP is evidence held by
            # the sensor that raised it, and another sensor of the zone must not answer for it
            alert_id, sensor = views.parse_central_id(text)
            alert = alert_store.get_alert(s, sensor, alert_id)
            if alert is None:
                raise HTTPException(404, f"alert {text} does not exist")
            key = (alert.sensor, alert.alert_id)
            rows = s.scalars(
                select(PcapRequest)
                .where(PcapRequest.sensor == key[0], PcapRequest.alert_id == key[1])
                .order_by(PcapRequest.requested_ns.desc())
                .limit(5)
            )
            for row in rows:
                view = _pcap_view(s, row)
                if view["state"] == "done" and (row.expires_ns or 0) > now:
                    return view, key
                if view["state"] == "pending" and now - row.requested_ns < _PENDING_REUSE_NS:
                    return view, key
            return None, key

    def _new_request(key: tuple[str, int], caller: Caller) -> str:
        request_id = str(uuid.uuid4())
        with session() as s:
            s.add(
                PcapRequest(
                    request_id=request_id,
                    sensor=key[0],
                    alert_id=key[1],
                    requested_by=caller.actor,
                    requested_ns=time.time_ns(),
                    state="pending",
                )
            )
        return request_id

    def _request_done(request_id: str, command_id: str | None, error: str | None):
        with session() as s:
            row = s.get(PcapRequest, request_id)
            row.command_id = command_id
            if error:
                row.state, row.reason = "failed", error[:512]
            return _pcap_view(s, row)

    @app.post(f"{API}/alerts/{{alert_id}}/pcap", tags=["pcap"])
    async def request_pcap(alert_id: str, caller: Admin, fresh: bool = False) -> dict[str, Any]:
        """Ask the sensor that detected the alert for its PCAP (a file cached in the last
        48 h, or a request already under way, is reused unless ``fresh``)."""
        if pcaps is None:
            raise HTTPException(503, "this central has no PCAP directory (--pcap-dir)")
        view, key = await run_in_threadpool(_reuse, alert_id)
        if view is not None and not fresh:
            return view
        assert key is not None
        request_id = await run_in_threadpool(_new_request, key, caller)
        try:
            result = await commander.issue_command(
                key[0], "pcap", actor=caller.actor, alert_id=key[1], request_id=request_id
            )
        except CommandRefused as exc:
            view = await run_in_threadpool(_request_done, request_id, None, str(exc))
            raise HTTPException(409, str(exc)) from None
        return await run_in_threadpool(_request_done, request_id, result.command_id, None)

    def _load(request_id: str) -> PcapRequest:
        with session() as s:
            row = s.get(PcapRequest, request_id)
            if row is None:
                raise HTTPException(404, f"no PCAP request {request_id}")
            return row

    @app.get(f"{API}/pcap/{{request_id}}", tags=["pcap"])
    def pcap_status(request_id: str, _caller: Admin) -> dict:
        """Where a PCAP request stands: pending (sensor offline or sending), done,
        not_available (the sensor no longer has it), failed or expired."""
        if pcaps is not None:
            pcaps.path(request_id)  # validates the id
        _load(request_id)
        with session() as s:
            return _pcap_view(s, s.get(PcapRequest, request_id))

    @app.get(
        f"{API}/pcap/{{request_id}}/file",
        tags=["pcap"],
        response_class=FileResponse,
        responses={200: {"content": {"application/vnd.tcpdump.pcap": {}}}},
    )
    def pcap_file(request_id: str, _caller: Admin) -> FileResponse:
        """The verified PCAP file (header ``X-Otwatch-SHA256`` carries its digest)."""
        if pcaps is None:
            raise HTTPException(503, "this central has no PCAP directory (--pcap-dir)")
        path = pcaps.path(request_id)
        row = _load(request_id)
        if row.state != "done" or not path.exists():
            raise HTTPException(409, f"PCAP request {request_id} is {row.state}, no file")
        return FileResponse(
            path,
            media_type="application/vnd.tcpdump.pcap",
            filename=f"alert-{row.alert_id}-{row.sensor}.pcap",
            headers={"X-Otwatch-SHA256": row.sha256 or ""},
        )

    return app


def _csv(rows: list[dict[str, Any]], header: bool) -> str:
    buf = io.StringIO()
    alerts_to_csv(rows, buf)
    text = buf.getvalue()
    return text if header else text.split("\r\n", 1)[1]
