"""Syslog target: RFC 5424 messages over UDP (RFC 5426), TCP with octet-counting framing
(RFC 6587) or TLS (RFC 5425, certificate verified against ``ca_file``, optional client
certificate).

TCP and TLS confirm a batch once the kernel took it (``drain``); syslog has no
application acknowledgement, so a receiver that dies with data in its socket buffer can
lose it. Use a webhook when end-to-end acknowledgement matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Sequence

from otwatch.forwarding.events import ForwardEvent
from otwatch.forwarding.formats import FORMATTERS
from otwatch.forwarding.rfc5424 import frame_octet_counted, syslog_message
from otwatch.forwarding.targets.base import DeliveryError, SyslogSpec, read_secret, target_label

__all__ = ["SyslogTarget", "tls_client_context"]

UDP_MAX = 65_000
"""Larger UDP messages are truncated (RFC 5426 §3.2 allows it); one datagram each."""
CONNECT_TIMEOUT_S = 10.0


def tls_client_context(spec: SyslogSpec) -> ssl.SSLContext:
    """Verification on (hostname and chain); client certificate when configured."""
    try:
        context = ssl.create_default_context(cafile=spec.ca_file)
        if spec.cert_file and spec.key_file:
            password = (
                read_secret(spec.passphrase_file, "TLS key passphrase")
                if spec.passphrase_file
                else None
            )
            context.load_cert_chain(spec.cert_file, spec.key_file, password=password)
    except (OSError, ssl.SSLError) as exc:
        raise DeliveryError(f"{target_label(spec)}: TLS setup failed: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


class SyslogTarget:
    def __init__(self, spec: SyslogSpec) -> None:
        self.spec = spec
        self.label = target_label(spec)
        self.chunk = 1000
        self.detail = spec.format == "json"
        self._body = FORMATTERS[spec.format]
        self._ssl = tls_client_context(spec) if spec.transport == "tls" else None
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._udp: socket.socket | None = None

    def encode(self, events: Sequence[ForwardEvent]) -> list[bytes]:
        return [syslog_message(event, self._body(event)) for event in events]

    async def send(self, events: Sequence[ForwardEvent]) -> None:
        messages = self.encode(events)
        try:
            if self.spec.transport == "udp":
                self._send_udp(messages)
            else:
                await self._send_stream(messages)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            await self.close()
            raise DeliveryError(f"{self.label}: {describe_error(exc)}") from None

    def _send_udp(self, messages: list[bytes]) -> None:
        if self._udp is None:
            info = socket.getaddrinfo(self.spec.host, self.spec.port, type=socket.SOCK_DGRAM)
            family, _, _, _, address = info[0]
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.connect(address)
            self._udp = sock
        for message in messages:
            self._udp.send(message[:UDP_MAX])

    async def _send_stream(self, messages: list[bytes]) -> None:
        reader, writer = self._reader, self._writer
        if reader is None or writer is None or writer.is_closing() or reader.at_eof():
            await self.close()
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.spec.host,
                    self.spec.port,
                    ssl=self._ssl,
                    server_hostname=(self.spec.server_name or self.spec.host)
                    if self._ssl
                    else None,
                ),
                CONNECT_TIMEOUT_S,
            )
        assert self._writer is not None  # (re)connected above
        self._writer.write(b"".join(frame_octet_counted(m) for m in messages))
        await asyncio.wait_for(self._writer.drain(), CONNECT_TIMEOUT_S)

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2)
        if self._udp is not None:
            self._udp.close()
            self._udp = None
