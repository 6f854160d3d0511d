"""The one configuration file, ``/etc/otwatch/otwatch.toml``, with environment overrides.

Every setting has a default, so an empty (or absent) file is valid. ``OTWATCH_<SECTION>_<KEY>``
overrides one setting (``OTWATCH_SENSOR_ID=plc-gw-1``, ``OTWATCH_SYNC_BROKER=mqtts://…``;
lists are comma-separated). :func:`load_config` returns a frozen :class:`Config` or raises
:class:`ConfigError` listing every problem as ``key: what is wrong — fix: what to do``.
Passwords are never accepted inline: a ``password_file`` names a file only the daemon's user
can read, and :meth:`BrokerSection.read_password` reads it when connecting.
``deploy/otwatch.toml`` documents every key.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from otwatch.config_engines import engines_table
from otwatch.config_problems import (
    FIX,
    SECRET_FIX,
    SECRET_KEYS,
    ConfigError,
    describe,
)
from otwatch.config_values import (
    Duration,
    FilePath,
    PrivateFilePath,
    Size,
    interface_name,
    number_text,
    sensor_id,
    subnet,
)
from otwatch.listen_address import ListenError, parse_listen
from otwatch.metrics_address import MetricsError, parse_metrics_address
from otwatch.nesting import load_toml
from otwatch.timeutil import parse_duration_ns
from otwatch.units import parse_size

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "BrokerSection",
    "Config",
    "ConfigError",
    "load_config",
]

DEFAULT_CONFIG_PATH = Path("/etc/otwatch/otwatch.toml")
ENV_PREFIX = "OTWATCH_"


# --- sections ----------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _toml_booleans_only(cls, value: Any, info: ValidationInfo) -> Any:
        """``true``/``false`` only: pydantic would read ``"no"``, ``0`` or ``"off"`` as false."""
        assert info.field_name is not None  # set for a field validator
        if cls.model_fields[info.field_name].annotation is bool and not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true or false{FIX}write true or false (no quotes)")
        return value


class SensorSection(_Section):
    id: Annotated[str, AfterValidator(sensor_id)] = ""
    """Empty: the id already stored in the database, else the host name."""
    site: str = ""
    zone: str = ""


class CaptureSection(_Section):
    interfaces: list[Annotated[str, AfterValidator(interface_name)]] = Field(default_factory=list)
    method: Literal["", "tpacket", "scapy", "libpcap"] = ""
    """Empty: TPACKET_V3 on Linux, Scapy elsewhere."""
    bpf: Annotated[str, AfterValidator(str.strip)] = ""
    """A tcpdump filter; the sensor compiles it (``otwatch.agent.config_check``)."""
    promisc: bool = True
    direction: Literal["inout", "in"] = "inout"


class DetectionSection(_Section):
    learning_period: Duration = ""
    """Empty: continue the stored learning state; e.g. ``14d`` starts a new learning period."""
    ot_subnets: list[Annotated[str, AfterValidator(subnet)]] = Field(default_factory=list)
    alert_rate_limit: int = Field(default=100, ge=0)
    """New distinct alerts of one type per ``alert_rate_window`` before further new ones fold
    into one "multiple violations" alert of that type (0: no limit)."""
    alert_rate_window: Duration = "1m"

    @field_validator("alert_rate_window")
    @classmethod
    def _positive_window(cls, value: str) -> str:
        from otwatch.timeutil import parse_duration_ns

        if value and parse_duration_ns(value) <= 0:
            raise ValueError(f"{value!r} is not a window{FIX}write a duration such as 1m")
        return value

    @property
    def learning_period_ns(self) -> int | None:
        from otwatch.timeutil import parse_duration_ns

        return parse_duration_ns(self.learning_period) if self.learning_period else None


class EnginesSection(_Section):
    disabled: tuple[str, ...] = ()
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per-engine threshold overrides (``[engines.<name>]`` tables), only the keys given."""


class PcapSection(_Section):
    ring_budget: Size = "4GiB"
    ring_budget_percent: float = Field(default=20.0, gt=0, le=100)
    segment_size: Size = "64MiB"
    segment_duration: Duration = "5m"
    evidence_budget: Size = "1GiB"
    evidence_alert_budget: Size = "32MiB"
    evidence_before: Duration = "30s"
    evidence_after: Duration = "30s"


def _broker_url(value: str) -> str:
    parts = urlsplit(value)
    example = "mqtts://broker.example:8883"
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ValueError(
            f"{value!r} is not a URL like {example}{FIX}use the scheme mqtts:// (TLS) or mqtt://"
        )
    if not parts.hostname or not parts.netloc:
        raise ValueError(f"{value!r} is not a URL like {example}{FIX}write scheme://host:port")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{value!r} has an invalid port{FIX}use a port from 1 to 65535")
    if parts.password:
        raise ValueError(
            f"{_redact_url(value)!r} carries a password{FIX}remove it from the URL and set "
            "password_file"
        )
    if parts.scheme == "mqtt" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"{value!r} sends credentials and alerts in clear to a remote host{FIX}use mqtts://"
        )
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BrokerSection(_Section):
    """How a daemon reaches the MQTT broker: URL, TLS files and credentials."""

    broker: Annotated[str, AfterValidator(_broker_url)] = "mqtts://127.0.0.1:8883"
    ca_file: FilePath = None
    """CA certificate of the broker; empty: the system's trusted CAs."""
    cert_file: FilePath = None
    key_file: FilePath = Field(default=None, validate_default=True)
    username: str = ""
    password_file: PrivateFilePath = None

    @field_validator("cert_file")
    @classmethod
    def _tls_only(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and str(info.data.get("broker", "")).startswith("mqtt://"):
            raise ValueError(
                f"a client certificate is set but the broker URL is mqtt://{FIX}use mqtts://"
            )
        return value

    @field_validator("key_file")
    @classmethod
    def _pairs_with_cert(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "cert_file" not in info.data:  # cert_file itself is wrong; reported already
            return value
        if (info.data["cert_file"] is None) != (value is None):
            missing = "key_file" if value is None else "cert_file"
            raise ValueError(f"cert_file and key_file go together{FIX}set {missing} as well")
        return value

    def read_password(self) -> str | None:
        """The password from ``password_file`` (first line), or None when none is set."""
        if self.password_file is None:
            return None
        try:
            text = self.password_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                [
                    f"password_file: cannot read '{self.password_file}': {exc.strerror}{FIX}"
                    "make it readable by this daemon's user (and nobody else)"
                ],
                str(self.password_file),
            ) from None
        return text.splitlines()[0] if text else ""


class _SyncPeerSection(BrokerSection):
    """A daemon that merges change clocks from its peers (sync daemon, central)."""

    max_clock_skew: Duration = "1d"
    """How far ahead of this machine's clock a peer's change clock may be; further is
    clamped and logged as a security event (``otwatch.hlc``)."""

    @property
    def max_clock_skew_ms(self) -> int:
        return parse_duration_ns(self.max_clock_skew) // 1_000_000


class SyncSection(_SyncPeerSection):
    """The sensor's sync daemon (username defaults to the sensor id)."""


def _listen(value: str, info: ValidationInfo) -> str:
    """As ``central run`` checks ``--listen`` (one parser): host:port, loopback unless
    ``allow_remote`` (declared before ``listen`` so that it is known here)."""
    try:
        parse_listen(value, allow_remote=info.data.get("allow_remote", False))
    except ListenError as exc:
        raise ValueError(f"{exc.problem}{FIX}{exc.fix}") from None
    return value


def _db_url(value: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if value.startswith("/"):  # a SQLite file path, as ``central run --db`` accepts
        return value
    try:
        url = make_url(value)
    except ArgumentError:
        url = None
    if url is None or url.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(
            f"{_redact_url(value)!r} is not a database URL{FIX}use "
            "sqlite:////var/lib/otwatch-central/central.db or "
            "postgresql+psycopg://user@host/dbname"
        )
    if url.password:
        raise ValueError(
            f"{_redact_url(value)!r} carries a password{FIX}use ~/.pgpass or PGPASSFILE "
            "for the otwatch-central user, or certificate authentication"
        )
    return value


class CentralSection(_SyncPeerSection):
    """The central store service."""

    data_dir: Path = Path("/var/lib/otwatch-central")
    db: Annotated[str, AfterValidator(_db_url)] = "sqlite:////var/lib/otwatch-central/central.db"
    """Database URL (``OTWATCH_CENTRAL_DB``, as ``central run --db``)."""
    allow_remote: bool = False
    """Serve the API on an address that is not loopback (as ``central run --allow-remote``)."""
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8080"
    max_request_body: Size = "1MiB"
    """Largest HTTP request body the API reads; larger ones are answered 413 unread."""

    @property
    def max_request_body_bytes(self) -> int:
        return parse_size(self.max_request_body)


def _metrics_address(value: str) -> str:
    if value.strip():
        try:
            parse_metrics_address(value, allow_remote=True)  # loopback: checked below
        except MetricsError as exc:
            raise ValueError(str(exc)) from None
    return value.strip()


MetricsAddress = Annotated[str, BeforeValidator(number_text), AfterValidator(_metrics_address)]


class MetricsSection(_Section):
    """Prometheus metrics of each daemon: ``host:port`` (or a port for 127.0.0.1); empty:
    off. Addresses that are not loopback need ``allow_remote`` (no authentication)."""

    agent_listen: MetricsAddress = ""
    sync_listen: MetricsAddress = ""
    central_listen: MetricsAddress = ""
    allow_remote: bool = Field(default=False, validate_default=True)

    @field_validator("allow_remote")
    @classmethod
    def _loopback_unless_allowed(cls, value: bool, info: ValidationInfo) -> bool:
        for key in ("agent_listen", "sync_listen", "central_listen"):
            address = info.data.get(key)
            if address and not value:
                try:
                    parse_metrics_address(address)
                except MetricsError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return value

    def address(self, daemon: str) -> tuple[str, int] | None:
        text = getattr(self, f"{daemon}_listen")
        return parse_metrics_address(text, allow_remote=self.allow_remote) if text else None


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class LogSection(_Section):
    level: Annotated[
        Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_lower)
    ] = "info"
    format: Literal["text", "json"] = "text"


class Config(_Section):
    """The effective configuration: file, then environment overrides, then defaults."""

    sensor: SensorSection = Field(default_factory=SensorSection)
    capture: CaptureSection = Field(default_factory=CaptureSection)
    detection: DetectionSection = Field(default_factory=DetectionSection)
    engines: EnginesSection = Field(default_factory=EnginesSection)
    pcap: PcapSection = Field(default_factory=PcapSection)
    sync: SyncSection = Field(default_factory=SyncSection)
    central: CentralSection = Field(default_factory=CentralSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    log: LogSection = Field(default_factory=LogSection)
    _source: str = PrivateAttr(default="built-in defaults")
    _where: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> str:
        return self._source

    @property
    def where(self) -> dict[tuple[str, ...], str]:
        """``(section, key)`` → the environment variable that set it (named in problems)."""
        return self._where

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data, with any secret a URL or key might carry masked."""
        return _redact(self.model_dump(mode="json"))


# --- loading ----------------------------------------------------------------------------


def _env_overrides(
    env: Mapping[str, str], problems: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, ...], str]]:
    """``OTWATCH_<SECTION>_<KEY>`` variables as nested values; variables whose first word
    is not a section (``OTWATCH_DATA_DIR``, ``OTWATCH_CONFIG``) belong to the CLI.

    Not pydantic-settings: it ignores variables that name no field (here a typo is an
    error listing the valid names), wants JSON for lists (here comma-separated), and would
    not tell ``describe`` which variable a bad value came from; covering those needs a
    custom source as long as this function."""
    sections = Config.model_fields
    out: dict[str, dict[str, Any]] = {}
    where: dict[tuple[str, ...], str] = {}
    for name, value in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in sections or not key:
            continue
        section_model = sections[section].annotation
        fields = section_model.model_fields if isinstance(section_model, type) else {}
        if (section == "engines" and key != "disabled") or key not in fields:
            if key in SECRET_KEYS:
                problems.append(f"{name}: {SECRET_FIX}")
            else:
                known = ", ".join(f"{ENV_PREFIX}{section.upper()}_{k.upper()}" for k in fields)
                problems.append(f"{name}: unknown setting {section}.{key}{FIX}use one of {known}")
            continue
        annotation = str(fields[key].annotation)
        parsed: Any = value
        if annotation.startswith(("list", "tuple")):
            parsed = [v.strip() for v in value.split(",") if v.strip()]
        elif fields[key].annotation is bool:  # TOML's spelling only, as in the file
            parsed = {"true": True, "false": False}.get(value.strip(), value)
        out.setdefault(section, {})[key] = parsed
        where[(section, key)] = name
    return out, where


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return load_toml(handle)
    except FileNotFoundError:
        fix = "create it (deploy/otwatch.toml is a commented example) or pass another --config"
        raise ConfigError([f"{path}: file does not exist{FIX}{fix}"], str(path)) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory{FIX}name the file"], str(path)) from None
    except PermissionError:
        raise ConfigError(
            [f"{path}: permission denied{FIX}make it readable by this user (mode 0644)"],
            str(path),
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text{FIX}save it as UTF-8"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: {exc}{FIX}correct the TOML syntax"], str(path)) from None


def load_config(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """The effective configuration; raises :class:`ConfigError` listing every problem.

    ``path`` None reads :data:`DEFAULT_CONFIG_PATH` when it exists (else defaults only); a
    path given explicitly must exist. ``env`` defaults to ``os.environ``.
    """
    env = os.environ if env is None else env
    if path is None:
        chosen = DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None
    else:
        chosen = Path(path)
    raw = _read_file(chosen) if chosen is not None else {}
    source = str(chosen) if chosen is not None else "built-in defaults"
    problems: list[str] = []
    overrides, where = _env_overrides(env, problems)
    for section, values in overrides.items():
        current = raw.get(section)
        raw[section] = {**current, **values} if isinstance(current, dict) else values
    if where:
        source += " + environment"
    raw["engines"] = engines_table(raw.get("engines"), problems, where)
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems[:0] = describe(exc, Config, (), where)
    if problems or config is None:
        raise ConfigError(problems, source)
    config._source = source
    config._where = where
    return config


# --- redaction ------------------------------------------------------------------------------


def _redact_url(value: str) -> str:
    return re.sub(r"(://[^/:@]*:)[^@/]*@", r"\1***@", value)


def _redact(data: Any, key: str = "") -> Any:
    if isinstance(data, dict):
        return {k: _redact(v, k) for k, v in data.items()}
    if isinstance(data, list):
        return [_redact(v, key) for v in data]
    if isinstance(data, str):
        if key in SECRET_KEYS and data:
            return "***"
        return _redact_url(data)
    return data
