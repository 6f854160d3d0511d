"""Forwarding targets: their settings (validated specs) and how to build one.

Each target sends a batch of events in order and raises ``DeliveryError`` with the exact
reason when it cannot; the worker retries the same batch. Secrets (webhook HMAC secret,
header values, TLS key passphrase) are read from files named in the settings, never
stored or shown themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from otwatch.errors import OtwatchError
from otwatch.forwarding.events import ForwardEvent

__all__ = [
    "DeliveryError",
    "FileSpec",
    "SyslogSpec",
    "Target",
    "TargetSpec",
    "WebhookSpec",
    "read_secret",
    "target_label",
]


class DeliveryError(OtwatchError):
    """A target did not take a batch; the message says exactly why."""


class Target(Protocol):
    label: str
    chunk: int
    """Most events per ``send``: the worker saves its cursor after each send."""
    detail: bool
    """Whether it sends the alerts' ``remediation`` and ``fields`` (ECS does)."""

    async def send(self, events: Sequence[ForwardEvent]) -> None: ...

    async def close(self) -> None: ...


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyslogSpec(_Spec):
    kind: Literal["syslog"] = "syslog"
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=514, ge=1, le=65535)
    transport: Literal["udp", "tcp", "tls"] = "udp"
    format: Literal["text", "cef", "leef", "json"] = "cef"
    ca_file: str | None = None
    """TLS: the CA bundle that signed the receiver's certificate (system CAs if absent)."""
    cert_file: str | None = None
    """TLS: client certificate (PEM) when the receiver asks for one."""
    key_file: str | None = None
    passphrase_file: str | None = None
    server_name: str | None = None
    """TLS: the name to verify in the receiver's certificate (default ``host``)."""

    @model_validator(mode="after")
    def _tls_only(self) -> SyslogSpec:
        tls_settings = (self.ca_file, self.cert_file, self.key_file, self.server_name)
        if self.transport != "tls" and any(tls_settings):
            raise ValueError("ca_file, cert_file, key_file and server_name need transport tls")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        return self


class FileSpec(_Spec):
    kind: Literal["file"] = "file"
    path: str = Field(min_length=1, max_length=4096)
    """ECS JSON lines, one event a line; rotated to ``path.1`` … ``path.<keep>``."""
    max_bytes: int = Field(default=100 << 20, ge=4096)
    keep: int = Field(default=5, ge=1, le=100)


class WebhookSpec(_Spec):
    kind: Literal["webhook"] = "webhook"
    url: str = Field(min_length=8, max_length=2048)
    headers: dict[str, str] = Field(default_factory=dict, max_length=32)
    """Extra request headers; a value ``@/path`` is read from that file (keep tokens there)."""
    secret_file: str | None = None
    """HMAC-SHA256 key: the ``X-Otwatch-Signature: sha256=<hex>`` header signs the body."""
    batch: int = Field(default=100, ge=1, le=5000)
    """Events per request: 1 posts one ECS object, more post a JSON array."""
    ca_file: str | None = None
    verify: bool = True
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError(f"webhook url must be https://host[:port]/path, not {value!r}")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or any(c in name for c in ":\r\n ") or any(c in text for c in "\r\n"):
                raise ValueError(f"invalid header {name!r}")
        return value


TargetSpec = Annotated[SyslogSpec | FileSpec | WebhookSpec, Field(discriminator="kind")]


def target_label(spec: Any) -> str:
    """How a target is named in messages: ``syslog tcp://host:port (cef)``."""
    if isinstance(spec, SyslogSpec):
        return f"syslog {spec.transport}://{spec.host}:{spec.port} ({spec.format})"
    if isinstance(spec, FileSpec):
        return f"file {spec.path}"
    return f"webhook {spec.url}"


def read_secret(path: str, what: str) -> bytes:
    """A secret from its file, trailing line break removed; a clear error otherwise."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DeliveryError(f"cannot read {what} file {path}: {exc.strerror}") from None
    return data.rstrip(b"\r\n")
