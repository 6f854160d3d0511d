"""The central API's ``listen`` address: one parser for ``central run --listen`` and the
configuration's ``central.listen`` (``otwatch config check`` refuses what ``central run``
would refuse). Its own module so that ``otwatch.config`` can check it without importing
central (uvicorn, FastAPI)."""

from __future__ import annotations

import ipaddress

from otwatch.errors import OtwatchError

__all__ = ["ListenError", "parse_listen"]


class ListenError(OtwatchError):
    """An unusable or refused ``--listen`` address: what is wrong and how to fix it."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}; {fix}" if fix else problem)


def parse_listen(text: str, *, allow_remote: bool = False) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6). A host that is not a loopback address needs
    ``allow_remote`` (the API would be reachable from the network)."""
    raw = text.strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ListenError(
            f"{text!r} is not an address like 127.0.0.1:8470",
            "write HOST:PORT ([v6-address]:PORT for IPv6)",
        )
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise ListenError(
            f"listen host {host!r} is not an IP address", "give one, e.g. 127.0.0.1"
        ) from None
    if not loopback and not allow_remote:
        raise ListenError(
            f"refusing to serve the API on {host}: it is not a loopback address",
            "put a TLS reverse proxy in front, or allow it explicitly (central run "
            "--allow-remote, or allow_remote = true in [central])",
        )
    return host, int(port_text)
