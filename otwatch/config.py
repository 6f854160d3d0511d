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

import dataclasses
import ipaddress
import os
import re
import sys
import tomllib
import typing
from collections.abc import Mapping
from functools import cache
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
    create_model,
    field_validator,
)

from otwatch.errors import OtwatchError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "BrokerSection",
    "Config",
    "ConfigError",
    "load_config",
]

DEFAULT_CONFIG_PATH = Path("/etc/otwatch/otwatch.toml")
ENV_PREFIX = "OTWATCH_"
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "api_token"})
_FIX = " — fix: "


class ConfigError(OtwatchError):
    """The configuration is invalid; ``problems`` holds one ``key: what — fix: how`` each."""

    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = problems
        self.source = source
        super().__init__(f"invalid configuration ({source}): " + "; ".join(problems))


# --- value types -------------------------------------------------------------------------


def _text(value: Any) -> Any:
    """TOML numbers are fine where a duration or size is expected (seconds, bytes)."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _duration(value: str) -> str:
    from otwatch.timeutil import parse_duration_ns

    if value.strip():
        try:
            parse_duration_ns(value)
        except OtwatchError:
            raise ValueError(
                f"{value!r} is not a duration{_FIX}write e.g. 30s, 10m, 2h, 14d or 2w"
            ) from None
    return value.strip()


def _size(value: str) -> str:
    from otwatch.agent.capture.config import parse_size

    try:
        parse_size(value)
    except OtwatchError:
        raise ValueError(f"{value!r} is not a size{_FIX}write e.g. 512MiB, 4GiB or 2G") from None
    return value.strip()


Duration = Annotated[str, BeforeValidator(_text), AfterValidator(_duration)]
Size = Annotated[str, BeforeValidator(_text), AfterValidator(_size)]


def _sensor_id(value: str) -> str:
    from otwatch.agent.sensor import validate_sensor_id

    if value:
        try:
            validate_sensor_id(value)
        except OtwatchError:
            raise ValueError(
                f"{value!r} is not a valid sensor id{_FIX}use 1-64 letters, digits, '_', '.' "
                "or '-', starting with a letter or digit (it appears in MQTT topics)"
            ) from None
    return value


_IFNAME = re.compile(r"^[^\s/:]{1,15}$")


def _interface(value: str) -> str:
    if not _IFNAME.match(value):
        raise ValueError(
            f"{value!r} is not an interface name{_FIX}use the name `ip link` shows, e.g. eth1 "
            "(at most 15 characters, no '/', ':' or spaces)"
        )
    return value


def _subnet(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a subnet{_FIX}write it like 10.20.0.0/16 or 2001:db8::/32"
        ) from None


def _existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        what = "is a directory" if value.is_dir() else "does not exist"
        raise ValueError(f"'{value}' {what}{_FIX}correct the path or remove the setting")
    return value


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


FilePath = Annotated[Path | None, BeforeValidator(_blank_is_none), AfterValidator(_existing_file)]


# --- sections ----------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SensorSection(_Section):
    id: Annotated[str, AfterValidator(_sensor_id)] = ""
    """Empty: the id already stored in the database, else the host name."""
    site: str = ""
    zone: str = ""


class CaptureSection(_Section):
    interfaces: list[Annotated[str, AfterValidator(_interface)]] = Field(default_factory=list)
    method: Literal["", "tpacket", "scapy", "libpcap"] = ""
    """Empty: TPACKET_V3 on Linux, Scapy elsewhere."""
    bpf: str = ""
    promisc: bool = True
    direction: Literal["inout", "in"] = "inout"

    @field_validator("bpf")
    @classmethod
    def _compiles(cls, value: str) -> str:
        if value.strip():
            from otwatch.agent.capture.bpf import compile_filter

            try:
                compile_filter(value)
            except OtwatchError as exc:
                raise ValueError(f"{exc}{_FIX}write a tcpdump filter expression") from None
        return value.strip()


class DetectionSection(_Section):
    learning_period: Duration = ""
    """Empty: continue the stored learning state; e.g. ``14d`` starts a new learning period."""
    ot_subnets: list[Annotated[str, AfterValidator(_subnet)]] = Field(default_factory=list)
    alert_rate_limit: int = Field(default=100, ge=0)
    """New distinct alerts of one type per ``alert_rate_window`` before further new ones fold
    into one "multiple violations" alert of that type (0: no limit)."""
    alert_rate_window: Duration = "1m"

    @field_validator("alert_rate_window")
    @classmethod
    def _positive_window(cls, value: str) -> str:
        from otwatch.timeutil import parse_duration_ns

        if value and parse_duration_ns(value) <= 0:
            raise ValueError(f"{value!r} is not a window{_FIX}write a duration such as 1m")
        return value

    @property
    def learning_period_ns(self) -> int | None:
        from otwatch.timeutil import parse_duration_ns

        return parse_duration_ns(self.learning_period) if self.learning_period else None

    @property
    def alert_rate(self):  # -> otwatch.agent.alerts.ratelimit.RateLimit
        from otwatch.agent.alerts.ratelimit import DEFAULT_RATE_LIMIT, RateLimit
        from otwatch.timeutil import parse_duration_ns

        window = self.alert_rate_window
        window_ns = parse_duration_ns(window) if window else DEFAULT_RATE_LIMIT.window_ns
        return RateLimit(limit=self.alert_rate_limit, window_ns=window_ns)


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
            f"{value!r} is not a URL like {example}{_FIX}use the scheme mqtts:// (TLS) or mqtt://"
        )
    if not parts.hostname or not parts.netloc:
        raise ValueError(f"{value!r} is not a URL like {example}{_FIX}write scheme://host:port")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{value!r} has an invalid port{_FIX}use a port from 1 to 65535")
    if parts.password:
        raise ValueError(
            f"{_redact_url(value)!r} carries a password{_FIX}remove it from the URL and set "
            "password_file"
        )
    if parts.scheme == "mqtt" and not _is_loopback(parts.hostname):
        raise ValueError(
            f"{value!r} sends credentials and alerts in clear to a remote host{_FIX}use mqtts://"
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
    password_file: FilePath = None

    @field_validator("cert_file")
    @classmethod
    def _tls_only(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and str(info.data.get("broker", "")).startswith("mqtt://"):
            raise ValueError(
                f"a client certificate is set but the broker URL is mqtt://{_FIX}use mqtts://"
            )
        return value

    @field_validator("key_file")
    @classmethod
    def _pairs_with_cert(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if "cert_file" not in info.data:  # cert_file itself is wrong; reported already
            return value
        if (info.data["cert_file"] is None) != (value is None):
            missing = "key_file" if value is None else "cert_file"
            raise ValueError(f"cert_file and key_file go together{_FIX}set {missing} as well")
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
                    f"password_file: cannot read '{self.password_file}': {exc.strerror}{_FIX}"
                    "make it readable by this daemon's user (and nobody else)"
                ],
                str(self.password_file),
            ) from None
        return text.splitlines()[0] if text else ""

    def broker_config(self, default_username: str = ""):  # -> otwatch.sync.transport.BrokerConfig
        """The transport's ``BrokerConfig`` (reads the password file now)."""
        from otwatch.sync.transport import BrokerConfig

        return BrokerConfig(
            tls_ca=self.ca_file,
            tls_cert=self.cert_file,
            tls_key=self.key_file,
            username=self.username or default_username or None,
            password=self.read_password(),
        ).with_url(self.broker)


class _SyncPeerSection(BrokerSection):
    """A daemon that merges change clocks from its peers (sync daemon, central)."""

    max_clock_skew: Duration = "1d"
    """How far ahead of this machine's clock a peer's change clock may be; further is
    clamped and logged as a security event (``otwatch.hlc``)."""

    @property
    def max_clock_skew_ms(self) -> int:
        from otwatch.timeutil import parse_duration_ns

        return parse_duration_ns(self.max_clock_skew) // 1_000_000


class SyncSection(_SyncPeerSection):
    """The sensor's sync daemon (username defaults to the sensor id)."""


def _listen(value: str) -> str:
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d{1,5})", value)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(
            f"{value!r} is not an address like 127.0.0.1:8080{_FIX}write host:port "
            "([v6-address]:port for IPv6)"
        )
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
            f"{_redact_url(value)!r} is not a database URL{_FIX}use "
            "sqlite:////var/lib/otwatch-central/central.db or "
            "postgresql+psycopg://user@host/dbname"
        )
    if url.password:
        raise ValueError(
            f"{_redact_url(value)!r} carries a password{_FIX}use ~/.pgpass or PGPASSFILE "
            "for the otwatch-central user, or certificate authentication"
        )
    return value


class CentralSection(_SyncPeerSection):
    """The central store service."""

    data_dir: Path = Path("/var/lib/otwatch-central")
    db: Annotated[str, AfterValidator(_db_url)] = "sqlite:////var/lib/otwatch-central/central.db"
    """Database URL (``OTWATCH_CENTRAL_DB``, as ``central run --db``)."""
    listen: Annotated[str, AfterValidator(_listen)] = "127.0.0.1:8080"
    max_request_body: Size = "1MiB"
    """Largest HTTP request body the API reads; larger ones are answered 413 unread."""

    @property
    def max_request_body_bytes(self) -> int:
        from otwatch.agent.capture.config import parse_size

        return parse_size(self.max_request_body)


def _metrics_address(value: str) -> str:
    from otwatch.metrics import MetricsError, parse_metrics_address

    if value.strip():
        try:
            parse_metrics_address(value, allow_remote=True)  # loopback: checked below
        except MetricsError as exc:
            raise ValueError(str(exc)) from None
    return value.strip()


MetricsAddress = Annotated[str, BeforeValidator(_text), AfterValidator(_metrics_address)]


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
        from otwatch.metrics import MetricsError, parse_metrics_address

        for key in ("agent_listen", "sync_listen", "central_listen"):
            address = info.data.get(key)
            if address and not value:
                try:
                    parse_metrics_address(address)
                except MetricsError as exc:
                    raise ValueError(f"{key}: {exc}") from None
        return value

    def address(self, daemon: str) -> tuple[str, int] | None:
        from otwatch.metrics import parse_metrics_address

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

    @property
    def source(self) -> str:
        return self._source

    def enabled_engines(self) -> tuple[type, ...]:
        """The registry's engines in order, minus ``engines.disabled``."""
        from otwatch.agent.engines.registry import ENGINES

        return tuple(e for e in ENGINES if e.name not in self.engines.disabled)

    def detection_options(self):  # -> otwatch.agent.replay.DetectionOptions
        """Engines, their settings (thresholds, ``enable``/``disable`` of alert types, IOC
        files), plant subnets and the alert rate limit, as replay and the agent use them."""
        from otwatch.agent.replay import DetectionOptions

        return DetectionOptions(
            engines=self.enabled_engines(),
            settings={name: dict(table) for name, table in self.engines.settings.items()},
            ot_subnets=tuple(self.detection.ot_subnets),
            alert_rate=self.detection.alert_rate,
        )

    def capture_config(self):  # -> otwatch.agent.capture.config.CaptureConfig
        from otwatch.agent.capture.config import CaptureConfig, default_method

        return CaptureConfig(
            interfaces=tuple(self.capture.interfaces),
            method=self.capture.method or default_method(),
            bpf=self.capture.bpf or None,
            promisc=self.capture.promisc,
            direction=self.capture.direction,
        )

    def ring_config(self, data_dir: Path):  # -> RingConfig
        from otwatch.agent.capture.config import RingConfig, parse_size, ring_directory
        from otwatch.timeutil import NS_PER_S, parse_duration_ns

        return RingConfig(
            directory=ring_directory(data_dir),
            segment_bytes=parse_size(self.pcap.segment_size),
            segment_seconds=parse_duration_ns(self.pcap.segment_duration) / NS_PER_S,
            max_bytes=parse_size(self.pcap.ring_budget),
            max_percent=self.pcap.ring_budget_percent,
        )

    def evidence_config(self, data_dir: Path):  # -> EvidenceConfig
        from otwatch.agent.capture.config import EvidenceConfig, evidence_directory, parse_size
        from otwatch.timeutil import NS_PER_S, parse_duration_ns

        return EvidenceConfig(
            directory=evidence_directory(data_dir),
            before_s=parse_duration_ns(self.pcap.evidence_before) / NS_PER_S,
            after_s=parse_duration_ns(self.pcap.evidence_after) / NS_PER_S,
            max_bytes=parse_size(self.pcap.evidence_budget),
            alert_max_bytes=parse_size(self.pcap.evidence_alert_budget),
        )

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data, with any secret a URL or key might carry masked."""
        return _redact(self.model_dump(mode="json"))


# --- engines: thresholds checked against each engine's own Config dataclass ---------------


@cache
def _engine_models() -> dict[str, type[BaseModel]]:
    from otwatch.agent.engines.registry import ENGINES

    models: dict[str, type[BaseModel]] = {}
    for engine in ENGINES:
        settings_cls = getattr(sys.modules[engine.__module__], "Config", None)
        fields: dict[str, Any] = {}
        if settings_cls is None or not dataclasses.is_dataclass(settings_cls):
            # no Config dataclass (e.g. the IOC engine): starting the engine checks the table
            models[engine.name] = create_model(
                f"{engine.name}_settings", __config__=ConfigDict(extra="allow")
            )
            continue
        hints = typing.get_type_hints(settings_cls)
        for f in dataclasses.fields(settings_cls):
            if f.default is not dataclasses.MISSING:
                fields[f.name] = (hints[f.name], f.default)
            elif f.default_factory is not dataclasses.MISSING:
                fields[f.name] = (hints[f.name], Field(default_factory=f.default_factory))
        try:
            model = create_model(
                f"{engine.name}_settings", __config__=ConfigDict(extra="forbid"), **fields
            )
        except Exception:  # an engine setting pydantic cannot describe: accept it unchecked
            model = create_model(f"{engine.name}_settings", __config__=ConfigDict(extra="allow"))
        models[engine.name] = model
    return models


def _engine_accepts(name: str, table: dict[str, Any]) -> str | None:
    """Start the engine with these settings (its own checks: positive numbers, lists, IOC
    files that exist and parse), so that a configuration that passes the check also starts
    the engine."""
    from otwatch.agent.engines.base import EngineContext
    from otwatch.agent.engines.baseline import Baseline, LearningClock
    from otwatch.agent.engines.config import engine_config
    from otwatch.agent.engines.detection import DetectionFactory
    from otwatch.agent.engines.registry import ENGINES
    from otwatch.alerts.catalog import load_catalog

    engine = next(e for e in ENGINES if e.name == name)
    settings_cls = getattr(sys.modules[engine.__module__], "Config", None)
    ctx = EngineContext(
        factory=DetectionFactory(load_catalog()),
        baseline=Baseline(),
        learning=LearningClock(0),
        settings={name: dict(table)},
    )
    try:
        if settings_cls is not None and dataclasses.is_dataclass(settings_cls):
            engine_config(settings_cls, table, name)
        engine(ctx)
    except (OtwatchError, TypeError, ValueError) as exc:
        return str(exc)
    return None


def _gate_accepts(name: str, table: dict[str, Any]) -> str | None:
    """``enable``/``disable`` (the alert types turned on or off, ``engines/gate.py``)."""
    from otwatch.agent.engines.gate import TypeGateError, check_gate_settings
    from otwatch.agent.engines.registry import ENGINES

    engine = next(e for e in ENGINES if e.name == name)
    try:
        check_gate_settings(name, engine.type_ids, table)
    except TypeGateError as exc:
        return str(exc)
    return None


def _check_engines(raw: Any, problems: list[str], where: dict[tuple[str, ...], str]) -> Any:
    """Validate ``[engines]``; returns the EnginesSection input, problems appended."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"engines: {raw!r} is not a table{_FIX}write it as [engines]")
        return {}
    models = _engine_models()
    known = sorted(models)
    disabled = raw.get("disabled", [])
    if not isinstance(disabled, list | tuple) or not all(isinstance(d, str) for d in disabled):
        problems.append(
            f"{_key(('engines', 'disabled'), where)}: {disabled!r} is not a list of engine "
            f'names{_FIX}write e.g. disabled = ["port_scan"]'
        )
        disabled = []
    for name in disabled:
        if name not in models:
            problems.append(
                f"{_key(('engines', 'disabled'), where)}: no engine named {name!r}{_FIX}"
                f"use one of {', '.join(known)}"
            )
    settings: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if name == "disabled":
            continue
        if name not in models:
            problems.append(
                f"engines.{name}: no engine named {name!r}{_FIX}use one of {', '.join(known)}"
            )
            continue
        if not isinstance(table, dict):
            problems.append(
                f"engines.{name}: {table!r} is not a table{_FIX}write it as [engines.{name}]"
            )
            continue
        gate_problem = _gate_accepts(name, table)
        if gate_problem:
            problems.append(
                f"engines.{name}: {gate_problem}{_FIX}list type ids from `otwatch catalog list`"
            )
            continue
        thresholds = {k: v for k, v in table.items() if k not in ("enable", "disable")}
        try:
            models[name].model_validate(thresholds)
        except ValidationError as exc:
            problems.extend(_describe(exc, models[name], ("engines", name), where))
            continue
        engine_problem = _engine_accepts(name, thresholds)
        if engine_problem:
            problems.append(f"engines.{name}: {engine_problem}{_FIX}correct the value")
            continue
        settings[name] = dict(table)
    return {"disabled": [d for d in disabled if d in models], "settings": settings}


# --- loading ----------------------------------------------------------------------------


def _env_overrides(
    env: Mapping[str, str], problems: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, ...], str]]:
    """``OTWATCH_<SECTION>_<KEY>`` variables as nested values; variables whose first word
    is not a section (``OTWATCH_DATA_DIR``, ``OTWATCH_CONFIG``) belong to the CLI."""
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
                problems.append(f"{name}: {_SECRET_FIX}")
            else:
                known = ", ".join(f"{ENV_PREFIX}{section.upper()}_{k.upper()}" for k in fields)
                problems.append(f"{name}: unknown setting {section}.{key}{_FIX}use one of {known}")
            continue
        annotation = str(fields[key].annotation)
        parsed: Any = value
        if annotation.startswith(("list", "tuple")):
            parsed = [v.strip() for v in value.split(",") if v.strip()]
        out.setdefault(section, {})[key] = parsed
        where[(section, key)] = name
    return out, where


_SECRET_FIX = (
    "secrets are not accepted in the configuration" + _FIX + "put the password in a file "
    "readable only by the daemon's user and set password_file"
)


def _key(loc: tuple[Any, ...], where: dict[tuple[str, ...], str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    source = where.get(tuple(str(p) for p in loc[:2]))
    return f"{source} ({text})" if source else text


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return list(model.model_fields)


def _describe(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: tuple[str, ...],
    where: dict[tuple[str, ...], str],
) -> list[str]:
    """One ``key: what — fix: how`` line per pydantic error."""
    lines = []
    for err in exc.errors():
        loc, kind, given = err["loc"], err["type"], err.get("input")
        if kind == "value_error":
            what = str(err["ctx"]["error"])
        elif kind == "extra_forbidden":
            if str(loc[-1]) in SECRET_KEYS:
                what = _SECRET_FIX
            else:
                known = _known_keys(model, loc[:-1])
                what = f"unknown setting{_FIX}check the spelling" + (
                    f" (known: {', '.join(known)})" if known else " (this table takes no keys)"
                )
        elif kind == "literal_error":
            what = f"{given!r} is not one of {err['ctx']['expected']}{_FIX}use one of them"
        elif kind.startswith("int_"):
            what = f"{given!r} is not a whole number{_FIX}write a number like 25"
        elif kind.startswith("float_"):
            what = f"{given!r} is not a number{_FIX}write a number like 2.5"
        elif kind.startswith("bool_"):
            what = f"{given!r} is not true or false{_FIX}write true or false (no quotes)"
        elif kind in ("list_type", "tuple_type"):
            what = f'{given!r} is not a list{_FIX}write a list like ["a", "b"]'
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            what = f"{given!r} is not a table{_FIX}write it as a [table] with keys"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            bound = err["msg"].lower().replace("input should be", "use a value")
            what = f"{given!r} is out of range{_FIX}{bound}"
        elif kind == "string_type":
            what = f"{given!r} is not text{_FIX}put it in double quotes"
        else:
            what = f"{given!r}: {err['msg'].lower()}{_FIX}correct the value"
        lines.append(f"{_key(prefix + tuple(loc), where)}: {what}")
    return lines


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        fix = "create it (deploy/otwatch.toml is a commented example) or pass another --config"
        raise ConfigError([f"{path}: file does not exist{_FIX}{fix}"], str(path)) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory{_FIX}name the file"], str(path)) from None
    except PermissionError:
        raise ConfigError(
            [f"{path}: permission denied{_FIX}make it readable by this user (mode 0644)"],
            str(path),
        ) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not UTF-8 text{_FIX}save it as UTF-8"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: {exc}{_FIX}correct the TOML syntax"], str(path)) from None


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
    raw["engines"] = _check_engines(raw.get("engines"), problems, where)
    config: Config | None = None
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems[:0] = _describe(exc, Config, (), where)
    if problems or config is None:
        raise ConfigError(problems, source)
    config._source = source
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
