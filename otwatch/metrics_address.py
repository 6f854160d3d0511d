"""The metrics endpoint's address: parsed and checked (loopback unless allowed).

Its own module so that ``otwatch.config`` can validate addresses without importing the
collectors (which read both stores)."""

from __future__ import annotations

import ipaddress
import re

from otwatch.errors import OtwatchError

__all__ = ["MetricsError", "parse_metrics_address"]

_FIX = " — fix: "


class MetricsError(OtwatchError):
    """A refused or unusable metrics address, or prometheus-client missing."""


def parse_metrics_address(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT``), or a bare ``PORT`` meaning ``127.0.0.1:PORT``.

    A host that is not a loopback address needs ``allow_remote``: the endpoint has no
    authentication and shows the sensor's figures to whoever can reach it.
    """
    raw = text.strip()
    if raw.isdigit():
        raw = f"127.0.0.1:{raw}"
    match = re.fullmatch(r"\[?([^\[\]]*?)\]?:(\d{1,5})", raw)
    if not match or not 0 < int(match.group(2)) < 65536:
        raise MetricsError(
            f"{text!r} is not a metrics address{_FIX}write HOST:PORT, e.g. 127.0.0.1:9464"
        )
    host = match.group(1) or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise MetricsError(
            f"{host!r} is not an IP address{_FIX}give one, e.g. 127.0.0.1:9464"
        ) from None
    if not loopback and not allow_remote:
        raise MetricsError(
            f"refusing to serve metrics on {host}: not a loopback address{_FIX}scrape through "
            "127.0.0.1 (or a TLS proxy), or allow it explicitly (metrics.allow_remote = true, "
            "--metrics-allow-remote)"
        )
    return host, int(match.group(2))
