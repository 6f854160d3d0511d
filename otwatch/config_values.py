"""Value types of the configuration's settings: each checks its text and says how to fix it
(the ``FIX`` part of a problem line)."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from otwatch.config_problems import FIX
from otwatch.errors import OtwatchError
from otwatch.sync.protocol.topics import SENSOR_ID
from otwatch.units import parse_size

__all__ = [
    "Duration",
    "FilePath",
    "PrivateFilePath",
    "Size",
    "interface_name",
    "number_text",
    "sensor_id",
    "subnet",
]


def number_text(value: Any) -> Any:
    """TOML numbers are fine where a duration or size is expected (seconds, bytes)."""
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _duration(value: str) -> str:
    from otwatch.timeutil import parse_duration_ns

    if value.strip():
        try:
            parse_duration_ns(value)
        except OtwatchError:
            raise ValueError(
                f"{value!r} is not a duration{FIX}write e.g. 30s, 10m, 2h, 14d or 2w"
            ) from None
    return value.strip()


def _size(value: str) -> str:
    try:
        parse_size(value)
    except OtwatchError:
        raise ValueError(f"{value!r} is not a size{FIX}write e.g. 512MiB, 4GiB or 2G") from None
    return value.strip()


Duration = Annotated[str, BeforeValidator(number_text), AfterValidator(_duration)]
Size = Annotated[str, BeforeValidator(number_text), AfterValidator(_size)]


def sensor_id(value: str) -> str:
    if value and not SENSOR_ID.match(value):
        raise ValueError(
            f"{value!r} is not a valid sensor id{FIX}use 1-64 letters, digits, '_', '.' "
            "or '-', starting with a letter or digit (it appears in MQTT topics)"
        )
    return value


_IFNAME = re.compile(r"^[^\s/:]{1,15}$")


def interface_name(value: str) -> str:
    if not _IFNAME.match(value):
        raise ValueError(
            f"{value!r} is not an interface name{FIX}use the name `ip link` shows, e.g. eth1 "
            "(at most 15 characters, no '/', ':' or spaces)"
        )
    return value


def subnet(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError(
            f"{value!r} is not a subnet{FIX}write it like 10.20.0.0/16 or 2001:db8::/32"
        ) from None


def _existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.is_file():
        what = "is a directory" if value.is_dir() else "does not exist"
        raise ValueError(f"'{value}' {what}{FIX}correct the path or remove the setting")
    return value


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


FilePath = Annotated[Path | None, BeforeValidator(_blank_is_none), AfterValidator(_existing_file)]


def _private_file(value: Path | None) -> Path | None:
    from otwatch.secretfile import SecretFileError, check_secret_file

    if value is not None:
        try:
            check_secret_file(value)
        except SecretFileError as exc:
            raise ValueError(str(exc)) from None
    return value


PrivateFilePath = Annotated[FilePath, AfterValidator(_private_file)]
"""A file holding a secret: other users may not read it (``otwatch.secretfile``)."""
