"""One central process: MQTT ingest, the HTTP API and the periodic jobs on one event loop.

uvicorn's ``Server.serve()`` runs inside the same asyncio loop as ``CentralService``; signal
handling stays with the caller (``run_until_signal``), which sets ``stop`` for all three.
The API listens on loopback unless remote access is asked for explicitly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn

from otwatch.central.api import create_app
from otwatch.central.api.limits import DEFAULT_MAX_BODY_BYTES
from otwatch.central.api.sessions import PortalState
from otwatch.central.maintenance import MaintenanceSettings
from otwatch.central.node import CentralNode
from otwatch.central.pcapstore import PcapStore
from otwatch.central.service import CentralService
from otwatch.central.store.forwarding import central_backend
from otwatch.errors import OtwatchError
from otwatch.forwarding.child import run_forwarding_child
from otwatch.forwarding.worker import Forwarder
from otwatch.listen_address import ListenError, parse_listen
from otwatch.sync.tasks import spawn

__all__ = ["ListenError", "ServerOptions", "bind", "parse_listen", "serve"]

log = logging.getLogger(__name__)


def bind(address: tuple[str, int]) -> socket.socket:
    """The API's listening socket, bound now so that a busy port is one clear error."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


@dataclass(frozen=True)
class ServerOptions:
    listen: socket.socket | None = None
    """A socket from ``bind`` (None: no API)."""
    maintenance: MaintenanceSettings = field(default_factory=MaintenanceSettings)
    maintenance_interval_s: float = 60.0
    portal: PortalState | None = None
    """Session limits of the web portal (None: the defaults)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """Largest request body the API reads (``otwatch.central.api.limits``)."""
    forwarding_db: str | None = None
    """Run forwarding as a child process at lower priority on this database URL
    (``otwatch.forwarding.child``; ``central run`` does); None: a task in this process."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers (the process's ``stop`` event rules)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        return


async def _maintenance(
    service: CentralService, node: CentralNode, options: ServerOptions, stop: asyncio.Event
) -> None:
    while not stop.is_set():
        try:
            done = await service.worker.run(node.maintenance, time.time_ns(), options.maintenance)
            if any(done.values()):
                log.info("maintenance: %s", done)
        except OtwatchError as exc:
            log.warning("maintenance failed: %s", exc)
        except Exception:  # a bug in a job must not stop ingest or the API
            log.exception("maintenance failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=options.maintenance_interval_s)


async def serve(
    service: CentralService,
    node: CentralNode,
    pcaps: PcapStore | None,
    options: ServerOptions,
    stop: asyncio.Event,
) -> None:
    """Run ingest, the API (when ``options.listen``) and maintenance until ``stop``."""
    tasks = [spawn(_maintenance(service, node, options, stop), name="central-maintenance")]
    if options.forwarding_db is not None:
        tasks.append(spawn(run_forwarding_child(options.forwarding_db, stop), name="central-fwd"))
    else:
        tasks.append(spawn(Forwarder(central_backend(node.store)).run(stop), name="central-fwd"))
    server = None
    if options.listen is not None:
        app = create_app(
            node.store,
            service,
            pcaps,
            progress=node.pcap_progress,
            portal=options.portal,
            max_body_bytes=options.max_body_bytes,
        )
        host, port = options.listen.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        server = _EmbeddedServer(config)
        tasks.append(spawn(server.serve(sockets=[options.listen]), name="central-api"))
        log.info("central API on http://%s:%d (OpenAPI at /openapi.json)", host, port)
    try:
        await service.run(stop)
    finally:
        stop.set()
        if server is not None:
            server.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
