"""PCAP on demand: ask the sensor for an alert's PCAP, follow the request, download the
verified file (``admin`` role). The bookkeeping is ``otwatch.central.pcap_requests``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from otwatch.central.api.deps import Admin, CommanderDep, PcapRequestsDep
from otwatch.central.commands import CommandRefused
from otwatch.central.pcap_requests import PcapRequests
from otwatch.central.store.models_api import PcapRequest

__all__ = ["router"]

router = APIRouter(tags=["pcap"])

NO_PCAP_DIR = "this central has no PCAP directory (--pcap-dir)"


@router.post("/alerts/{alert_id}/pcap")
async def request_pcap(
    alert_id: str,
    caller: Admin,
    requests: PcapRequestsDep,
    commander: CommanderDep,
    fresh: bool = False,
) -> dict[str, Any]:
    """Ask the sensor that detected the alert for its PCAP (a file cached in the last
    48 h, or a request already under way, is reused unless ``fresh``)."""
    if requests.pcaps is None:
        raise HTTPException(503, NO_PCAP_DIR)
    found = await run_in_threadpool(requests.reusable, alert_id)
    if found is None:
        raise HTTPException(404, f"alert {alert_id} does not exist")
    view, key = found
    if view is not None and not fresh:
        return view
    request_id = await run_in_threadpool(requests.open, key, caller.actor)
    try:
        result = await commander.issue_command(
            key[0], "pcap", actor=caller.actor, alert_id=key[1], request_id=request_id
        )
    except CommandRefused as exc:
        await run_in_threadpool(requests.sent, request_id, None, str(exc))
        raise HTTPException(409, str(exc)) from None
    return await run_in_threadpool(requests.sent, request_id, result.command_id, None)


def _load(requests: PcapRequests, request_id: str) -> PcapRequest:
    row = requests.get(request_id)
    if row is None:
        raise HTTPException(404, f"no PCAP request {request_id}")
    return row


@router.get("/pcap/{request_id}")
def pcap_status(request_id: str, _caller: Admin, requests: PcapRequestsDep) -> dict:
    """Where a PCAP request stands: pending (sensor offline or sending), done,
    not_available (the sensor no longer has it), failed or expired."""
    if requests.pcaps is not None:
        requests.pcaps.path(request_id)  # validates the id
    view = requests.status(request_id)
    if view is None:
        raise HTTPException(404, f"no PCAP request {request_id}")
    return view


@router.get(
    "/pcap/{request_id}/file",
    response_class=FileResponse,
    responses={200: {"content": {"application/vnd.tcpdump.pcap": {}}}},
)
def pcap_file(request_id: str, _caller: Admin, requests: PcapRequestsDep) -> FileResponse:
    """The verified PCAP file (header ``X-Otwatch-SHA256`` carries its digest)."""
    if requests.pcaps is None:
        raise HTTPException(503, NO_PCAP_DIR)
    path = requests.pcaps.path(request_id)
    row = _load(requests, request_id)
    if row.state != "done" or not path.exists():
        raise HTTPException(409, f"PCAP request {request_id} is {row.state}, no file")
    return FileResponse(
        path,
        media_type="application/vnd.tcpdump.pcap",
        filename=f"alert-{row.alert_id}-{row.sensor}.pcap",
        headers={"X-Otwatch-SHA256": row.sha256 or ""},
    )
