"""Reading alerts: list, group, export as CSV, show one (``reader`` role)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from otwatch.alerts.views import GROUP_BY, alerts_to_csv
from otwatch.central import alertviews as views
from otwatch.central.api.deps import Reader, Store
from otwatch.central.api.filters import Filter

__all__ = ["router"]

router = APIRouter(tags=["alerts"])

CSV_PAGE = 1000
"""Rows per chunk of the streamed CSV export."""


@router.get("/alerts")
def list_alerts(
    flt: Filter,
    _caller: Reader,
    store: Store,
    sort: Annotated[str, Query(description="Sort key; '-' prefix: descending")] = (
        "-last_detection"
    ),
    limit: Annotated[int, Query(ge=1, le=views.MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Filtered alerts, newest last detection first; page with limit/offset. ``total``:
    how many alerts the filters select, exact; null when a search, time range, protocol,
    type, learnable or address filter selects more than ``total_at_least`` - 1."""
    with store.session() as s:
        rows, total = views.list_page(s, flt, sort=sort, limit=limit, offset=offset)
    return {
        "alerts": rows,
        "total": total,
        "total_at_least": views.TOTAL_CAP + 1 if total is None else total,
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if len(rows) == limit else None,
    }


@router.get("/alerts/groups")
def group_alerts(
    by: Annotated[str, Query(description=f"One of {', '.join(GROUP_BY)}")],
    flt: Filter,
    _caller: Reader,
    store: Store,
) -> dict[str, Any]:
    """Counts of the filtered alerts per value (the portal's Group by)."""
    with store.session() as s:
        groups = views.group_alerts(s, flt, by)
    return {"by": by, "groups": [{"value": v, "count": n} for v, n in groups]}


@router.get(
    "/alerts/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}},
)
def export_csv(
    flt: Filter,
    _caller: Reader,
    store: Store,
    sort: Annotated[str, Query()] = "-last_detection",
) -> StreamingResponse:
    """The filtered alerts as CSV (the spec's export columns, plus sensor/site/zone)."""
    with store.session() as s:  # fail early (bad sort) before the response starts
        views.list_alerts(s, flt, sort=sort, limit=1)

    def chunks() -> Iterator[str]:
        with store.session() as s:
            page: list[dict[str, Any]] = []
            first = True
            for row in views.export_rows(s, flt, sort):
                page.append(row)
                if len(page) >= CSV_PAGE:
                    yield _csv(page, first)
                    page, first = [], False
            if page or first:
                yield _csv(page, first)

    return StreamingResponse(
        chunks(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="alerts.csv"'},
    )


@router.get("/alerts/{alert_id}")
def show_alert(alert_id: str, _caller: Reader, store: Store) -> dict[str, Any]:
    """Everything about one alert: fields, remediation, audit history, sensors."""
    with store.session() as s:
        alert = views.find_alert(s, alert_id)
        if alert is None:
            raise HTTPException(404, f"alert {alert_id} does not exist")
        return views.alert_details(s, alert)


def _csv(rows: list[dict[str, Any]], header: bool) -> str:
    buf = io.StringIO()
    alerts_to_csv(rows, buf)
    text = buf.getvalue()
    return text if header else text.split("\r\n", 1)[1]
