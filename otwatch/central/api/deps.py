"""What the API's routers depend on, taken from ``app.state`` (set once by ``create_app``).

A router declares ``store: Store``, ``commander: CommanderDep`` or ``pcap: PcapRequestsDep``
in a route's signature; tests replace any of them with ``app.dependency_overrides``.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from otwatch.central.api.auth import Caller, require_admin, require_reader
from otwatch.central.commands import IssueResult
from otwatch.central.pcap_requests import PcapRequests
from otwatch.central.store.db import CentralStore

__all__ = [
    "API",
    "Admin",
    "Commander",
    "CommanderDep",
    "LocalCommander",
    "PcapRequestsDep",
    "Reader",
    "Store",
]

API = "/api/v1"
"""Prefix of the JSON API's routers."""


class Commander(Protocol):
    """Queues commands to sensors (``CentralService`` publishes them at once)."""

    async def issue_command(self, sensor_id: str, kind: str, **kwargs: Any) -> IssueResult: ...


class LocalCommander:
    """Issues commands on a ``CentralSync`` without MQTT (tests; an API-only process): they
    stay pending in the database and are sent by whichever instance is connected."""

    def __init__(self, sync: Any) -> None:
        self.sync = sync
        self._lock = threading.Lock()

    def _issue(self, sensor_id: str, kind: str, kwargs: dict[str, Any]) -> IssueResult:
        with self._lock:
            return self.sync.issue_command(sensor_id, kind, **kwargs)

    async def issue_command(self, sensor_id: str, kind: str, **kwargs: Any) -> IssueResult:
        return await run_in_threadpool(self._issue, sensor_id, kind, kwargs)


def get_store(request: Request) -> CentralStore:
    return request.app.state.store


def get_commander(request: Request) -> Commander:
    return request.app.state.commander


def get_pcap_requests(request: Request) -> PcapRequests:
    return request.app.state.pcap_requests


Store = Annotated[CentralStore, Depends(get_store)]
CommanderDep = Annotated[Commander, Depends(get_commander)]
PcapRequestsDep = Annotated[PcapRequests, Depends(get_pcap_requests)]
Reader = Annotated[Caller, Depends(require_reader)]
Admin = Annotated[Caller, Depends(require_admin)]
