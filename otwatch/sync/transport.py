"""The MQTT connection: the only module that imports aiomqtt (pinned ``>=2.5,<3``).

It always speaks MQTT v5 with a persistent session (clean start off, a session expiry), QoS 1,
and an optional last will; TLS from CA/cert/key files; username/password. Every aiomqtt or
socket error leaves this module as ``SyncTransportError``. Timeouts follow one rule: ``None``
means the configured default, ``math.inf`` waits forever.
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from otwatch.errors import OtwatchError

if TYPE_CHECKING:
    from otwatch.config import BrokerSection

__all__ = [
    "BrokerConfig",
    "Connection",
    "Inbound",
    "SyncTransportError",
    "Will",
    "parse_broker_url",
]

DEFAULT_SESSION_EXPIRY_S = 7 * 24 * 3600


class SyncTransportError(OtwatchError):
    """The broker cannot be reached, refused us, or the connection dropped."""


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    retain: bool = True


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """Where and how to connect. ``tls`` is on when ``tls_ca`` is set or the URL is mqtts."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    timeout_s: float = 10.0
    session_expiry_s: int = DEFAULT_SESSION_EXPIRY_S
    max_inflight: int = 64

    @classmethod
    def from_section(cls, section: BrokerSection, default_username: str = "") -> BrokerConfig:
        """The configuration file's ``[sync]`` or ``[central]`` broker settings (reads the
        password file now)."""
        return cls(
            tls_ca=section.ca_file,
            tls_cert=section.cert_file,
            tls_key=section.key_file,
            username=section.username or default_username or None,
            password=section.read_password(),
        ).with_url(section.broker)

    def with_url(self, url: str) -> BrokerConfig:
        host, port, tls = parse_broker_url(url)
        from dataclasses import replace

        return replace(self, host=host, port=port, tls=tls or self.tls)


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """``mqtt://host[:port]`` (1883) or ``mqtts://host[:port]`` (8883); a bare host works."""
    text = url if "://" in url else f"mqtt://{url}"
    parts = urlsplit(text)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise SyncTransportError(
            f"invalid broker URL {url!r}: use mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"
        )
    tls = parts.scheme in ("mqtts", "ssl")
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise SyncTransportError(f"invalid port in broker URL {url!r}") from None
    return parts.hostname, port, tls


def _tls_context(cfg: BrokerConfig) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(cfg.tls_ca) if cfg.tls_ca else None)
        if cfg.tls_cert:
            context.load_cert_chain(str(cfg.tls_cert), str(cfg.tls_key) if cfg.tls_key else None)
    except (OSError, ssl.SSLError) as exc:
        raise SyncTransportError(f"cannot load TLS files: {exc}") from None
    return context


class Connection:
    """One MQTT v5 session; use as ``async with Connection(cfg, client_id) as conn``."""

    def __init__(self, cfg: BrokerConfig, client_id: str, *, will: Will | None = None) -> None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = cfg.session_expiry_s
        will_arg = None
        if will is not None:
            will_arg = aiomqtt.Will(will.topic, will.payload, qos=1, retain=will.retain)
        self._cfg = cfg
        try:
            self._client = aiomqtt.Client(
                cfg.host,
                cfg.port,
                username=cfg.username,
                password=cfg.password,
                identifier=client_id,
                protocol=aiomqtt.ProtocolVersion.V5,
                will=will_arg,
                clean_start=False,
                keepalive=cfg.keepalive_s,
                timeout=cfg.timeout_s,
                properties=properties,
                tls_context=_tls_context(cfg) if (cfg.tls or cfg.tls_ca) else None,
                max_inflight_messages=cfg.max_inflight,
                # Small commands and acks must not wait for Nagle + delayed ACK (~40 ms).
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            )
        except (aiomqtt.MqttError, ValueError) as exc:
            raise SyncTransportError(f"cannot set up MQTT client: {exc}") from None

    async def __aenter__(self) -> Connection:
        try:
            await self._client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise SyncTransportError(
                f"cannot connect to broker {self._cfg.host}:{self._cfg.port}: {exc}"
            ) from None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # already gone; nothing to flush
            await self._client.__aexit__(exc_type, exc, tb)

    async def subscribe(self, topic: str, *, timeout: float | None = None) -> None:
        try:
            await self._client.subscribe(topic, qos=1, timeout=self._timeout(timeout))
        except aiomqtt.MqttError as exc:
            raise SyncTransportError(f"subscribe to {topic} failed: {exc}") from None

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        qos: int = 1,
        timeout: float | None = None,
    ) -> None:
        """Returns once the broker acknowledged (PUBACK), or raises ``SyncTransportError``."""
        try:
            await self._client.publish(
                topic, payload, qos=qos, retain=retain, timeout=self._timeout(timeout)
            )
        except aiomqtt.MqttError as exc:
            raise SyncTransportError(f"publish to {topic} failed: {exc}") from None

    async def messages(self) -> AsyncIterator[Inbound]:
        """Inbound messages until the connection drops (then ``SyncTransportError``)."""
        try:
            async for message in self._client.messages:
                payload = message.payload
                if isinstance(payload, str):
                    payload = payload.encode()
                elif not isinstance(payload, bytes | bytearray):
                    payload = b"" if payload is None else str(payload).encode()
                yield Inbound(str(message.topic), bytes(payload), bool(message.retain))
        except aiomqtt.MqttError as exc:
            raise SyncTransportError(f"connection lost: {exc}") from None

    def _timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self._cfg.timeout_s
        return math.inf if timeout == math.inf else timeout
