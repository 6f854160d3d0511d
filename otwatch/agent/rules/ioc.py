"""Indicator-of-compromise lists the administrator points the sensor to.

Three kinds of plain-text files, one indicator per line, ``#`` starts a comment (whole line
or after the value), blank lines are ignored:

- IP files: addresses or CIDR subnets (``203.0.113.7``, ``198.51.100.0/24``, IPv6 too);
- domain files: names, ``*`` as a wildcard (``evil.example``, ``*.evil.example``); a name
  without a wildcard matches exactly;
- URL files: request paths (``/wp-content/x.php``) or full URLs (the path is used); a
  trailing ``*`` matches any continuation, otherwise the path must match exactly (the query
  string is ignored).

A malformed line raises :class:`IocError` naming the file and line.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from otwatch.errors import OtwatchError

__all__ = ["IocError", "IocSet", "load_iocs"]

_COMMENT = re.compile(r"\s#.*$")
_DOMAIN = re.compile(r"^[a-z0-9*_-]+(\.[a-z0-9*_-]+)*\.?$")


class IocError(OtwatchError):
    """An IOC file cannot be read or has a malformed line."""


@dataclass
class IocSet:
    addresses: set[str] = field(default_factory=set)
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(default_factory=list)
    domains: set[str] = field(default_factory=set)
    domain_patterns: list[str] = field(default_factory=list)
    paths: set[str] = field(default_factory=set)
    path_prefixes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.addresses or self.networks or self.domains or self.domain_patterns
            or self.paths or self.path_prefixes
        )  # fmt: skip

    def has_addresses(self) -> bool:
        return bool(self.addresses or self.networks)

    def ip_matches(self, address: str) -> bool:
        if address in self.addresses:
            return True
        if not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)

    def domain_matches(self, name: str) -> bool:
        name = name.lower().rstrip(".")
        if name in self.domains:
            return True
        return any(fnmatch.fnmatchcase(name, p) for p in self.domain_patterns)

    def path_matches(self, path: str) -> bool:
        if path in self.paths:
            return True
        return any(path.startswith(p) for p in self.path_prefixes)


def _lines(path: str) -> Iterable[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            for number, raw in enumerate(f, 1):
                value = _COMMENT.sub("", raw).strip()
                if value and not value.startswith("#"):
                    yield number, value
    except OSError as exc:
        raise IocError(f"IOC file {path}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise IocError(f"IOC file {path}: not UTF-8 text") from None


def _ip_file(path: str, iocs: IocSet) -> None:
    for number, value in _lines(path):
        try:
            if "/" in value:
                iocs.networks.append(ipaddress.ip_network(value, strict=False))
            else:
                iocs.addresses.add(str(ipaddress.ip_address(value)))
        except ValueError:
            raise IocError(
                f"IOC file {path} line {number}: {value!r} is not an IP address or CIDR subnet"
            ) from None


def _domain_file(path: str, iocs: IocSet) -> None:
    for number, value in _lines(path):
        name = value.lower().rstrip(".")
        if not _DOMAIN.match(name) or len(name) > 253:
            raise IocError(f"IOC file {path} line {number}: {value!r} is not a domain name")
        if "*" in name:
            iocs.domain_patterns.append(name)
        else:
            iocs.domains.add(name)


def _url_file(path: str, iocs: IocSet) -> None:
    for number, value in _lines(path):
        if value.startswith("/"):
            url_path = value.split("?", 1)[0]
        else:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise IocError(
                    f"IOC file {path} line {number}: {value!r} is not a URL path (/...) or an "
                    "http(s) URL"
                )
            url_path = parts.path or "/"
        if " " in url_path:
            raise IocError(f"IOC file {path} line {number}: {value!r} contains a space")
        if url_path.endswith("*"):
            iocs.path_prefixes.append(url_path[:-1])
        else:
            iocs.paths.add(url_path)


def load_iocs(
    ip_files: Iterable[str | os.PathLike[str]] = (),
    domain_files: Iterable[str | os.PathLike[str]] = (),
    url_files: Iterable[str | os.PathLike[str]] = (),
) -> IocSet:
    iocs = IocSet()
    for path in ip_files:
        _ip_file(os.fspath(path), iocs)
    for path in domain_files:
        _domain_file(os.fspath(path), iocs)
    for path in url_files:
        _url_file(os.fspath(path), iocs)
    return iocs
