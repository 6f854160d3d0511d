"""Webhook target: HTTPS POST of ECS JSON, one event per request (an object) or batched (a
JSON array), custom headers, an optional HMAC-SHA256 signature of the body, TLS
verification on by default. A batch counts as delivered on a 2xx answer; anything else is
retried. One keep-alive connection, driven from a worker thread (``http.client``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http.client
import json
import ssl
from collections.abc import Sequence
from urllib.parse import urlsplit

from otwatch.forwarding.ecs import ecs_document
from otwatch.forwarding.events import PRODUCT, VERSION, ForwardEvent
from otwatch.forwarding.targets.base import DeliveryError, WebhookSpec, read_secret, target_label
from otwatch.forwarding.targets.syslog import describe_error

__all__ = ["SIGNATURE_HEADER", "WebhookTarget", "sign"]

SIGNATURE_HEADER = "X-Otwatch-Signature"
BODY_EXCERPT = 200


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookTarget:
    def __init__(self, spec: WebhookSpec) -> None:
        self.spec = spec
        self.label = target_label(spec)
        self.chunk = spec.batch
        self.detail = True
        parts = urlsplit(spec.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._secret = read_secret(spec.secret_file, "webhook secret") if spec.secret_file else None
        self._headers = {
            "Content-Type": "application/json",
            "User-Agent": f"{PRODUCT}/{VERSION}",
        }
        for name, value in spec.headers.items():
            if value.startswith("@"):
                value = read_secret(value[1:], f"header {name}").decode()
            self._headers[name] = value
        self._context: ssl.SSLContext | None = None
        if self._https:
            self._context = ssl.create_default_context(cafile=spec.ca_file)
            if not spec.verify:
                self._context.check_hostname = False
                self._context.verify_mode = ssl.CERT_NONE
        self._conn: http.client.HTTPConnection | None = None

    def bodies(self, events: Sequence[ForwardEvent]) -> list[bytes]:
        size = self.spec.batch
        if size == 1:
            return [_dumps(ecs_document(event)) for event in events]
        return [
            _dumps([ecs_document(e) for e in events[i : i + size]])
            for i in range(0, len(events), size)
        ]

    async def send(self, events: Sequence[ForwardEvent]) -> None:
        await asyncio.to_thread(self.send_blocking, events)

    def send_blocking(self, events: Sequence[ForwardEvent]) -> None:
        for body in self.bodies(events):
            self._post(body)

    def _post(self, body: bytes) -> None:
        headers = dict(self._headers)
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read(64 << 10)
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            self._drop()
            reason = describe_error(exc) if isinstance(exc, OSError) else f"{exc!r}"
            raise DeliveryError(f"{self.label}: {reason}") from None
        if response.will_close:
            self._drop()
        if not 200 <= response.status < 300:
            excerpt = answer[:BODY_EXCERPT].decode("utf-8", "replace").replace("\n", " ")
            raise DeliveryError(
                f"{self.label}: HTTP {response.status} {response.reason}: {excerpt}"
            )

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._https:
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.spec.timeout_s, context=self._context
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.spec.timeout_s
                )
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        self._drop()


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
