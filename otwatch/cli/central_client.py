"""``otwatch alerts … --central URL --token TOKEN``: the same commands against central's API.

The options (also ``OTWATCH_CENTRAL_URL`` / ``OTWATCH_CENTRAL_TOKEN``) may be given on the
root group or on ``alerts``; they land in ``ctx.meta`` and each ``alerts`` command asks
``client_from(ctx)`` whether to talk to central. JSON output keeps the sensor's keys (plus
``sensor``, ``site``, ``zone`` and ``sensors``); ids are central ids ``<alert id>-<sensor id>``.
HTTP goes through httpx (one connection reused for a command's requests).
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import httpx

from otwatch.alerts.views import AlertFilter
from otwatch.errors import OtwatchError
from otwatch.fileout import is_stdout, open_output
from otwatch.timeutil import format_iso

__all__ = [
    "AlertId",
    "CentralApiError",
    "CentralClient",
    "central_options",
    "client_from",
    "report_results",
]

_META = "otwatch.central"
PAGE = 1000
_CENTRAL_ID = re.compile(r"^\d{1,18}-[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CentralApiError(OtwatchError):
    """Central refused the request or cannot be reached (the message says which)."""


ALERT_ID_MAX = (1 << 63) - 1
"""The largest id an alert table holds (SQLite/PostgreSQL signed 64-bit integer)."""


class AlertId(click.ParamType):
    """A sensor alert id (integer) or a central id ``<sensor alert id>-<sensor id>``."""

    name = "ID"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        text = str(value).strip()
        if isinstance(value, int) or (text.isascii() and text.isdigit()):
            if not 1 <= int(text) <= ALERT_ID_MAX:
                self.fail(f"alert id {text[:30]} is out of range (1 to {ALERT_ID_MAX})", param, ctx)
            return int(text)
        if _CENTRAL_ID.match(text):
            return text
        self.fail(f"{text!r} is neither an alert id nor a central id like 42-sensor1", param, ctx)


def _remember(name: str) -> Callable[[click.Context, Any, Any], None]:
    def callback(ctx: click.Context, _param: Any, value: Any) -> None:
        if value:
            ctx.meta.setdefault(_META, {})[name] = value

    return callback


def central_options(func: Callable) -> Callable:
    """``--central URL`` and ``--token TOKEN`` (kept in ``ctx.meta``, not passed on)."""
    func = click.option(
        "--token",
        envvar="OTWATCH_CENTRAL_TOKEN",
        expose_value=False,
        callback=_remember("token"),
        help="Central API token (with --central). Env: OTWATCH_CENTRAL_TOKEN.",
    )(func)
    return click.option(
        "--central",
        metavar="URL",
        envvar="OTWATCH_CENTRAL_URL",
        expose_value=False,
        callback=_remember("url"),
        help="Work on central's alerts through its API, e.g. http://127.0.0.1:8470. "
        "Env: OTWATCH_CENTRAL_URL.",
    )(func)


class CentralClient:
    def __init__(self, url: str, token: str, *, timeout: float = 60.0) -> None:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CentralApiError(f"invalid --central URL {url!r}: use http(s)://HOST:PORT")
        self.base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/api/v1"
        self.http = httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )

    # -- transport ------------------------------------------------------------------------

    def _send(self, method: str, path: str, params: Any = None, body: Any = None) -> httpx.Response:
        """The response, its body not yet read (``CentralApiError`` for an error status)."""
        request = self.http.build_request(method, path, params=params, json=body)
        try:
            response = self.http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise CentralApiError(f"cannot reach central at {self.base}: {exc}") from None
        if response.is_error:
            try:
                response.read()
            finally:
                response.close()
            raise CentralApiError(_http_error(response))
        return response

    def _json(self, method: str, path: str, params: Any = None, body: Any = None) -> Any:
        response = self._send(method, path, params, body)
        try:
            response.read()
        except httpx.TransportError as exc:
            raise CentralApiError(f"cannot reach central at {self.base}: {exc}") from None
        finally:
            response.close()
        return response.json()

    def get(self, path: str, params: Any = None) -> Any:
        return self._json("GET", path, params)

    def post(self, path: str, body: Any = None, params: Any = None) -> Any:
        return self._json("POST", path, params, body if body is not None else {})

    def patch(self, path: str, body: Any) -> Any:
        return self._json("PATCH", path, None, body)

    def stream(self, path: str, params: Any = None) -> Iterator[bytes]:
        response = self._send("GET", path, params)
        try:
            yield from response.iter_bytes(1 << 16)
        except httpx.TransportError as exc:
            raise CentralApiError(f"cannot reach central at {self.base}: {exc}") from None
        finally:
            response.close()

    # -- alerts ---------------------------------------------------------------------------

    def alerts(self, flt: AlertFilter, sort: str, limit: int | None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        offset = 0
        while limit is None or len(rows) < limit:
            size = PAGE if limit is None else min(PAGE, limit - len(rows))
            params = {**filter_params(flt), "sort": sort, "limit": size, "offset": offset}
            page = self.get("/alerts", params)
            rows.extend(page["alerts"])
            if page.get("next_offset") is None:
                break
            offset = page["next_offset"]
        return rows

    def groups(self, flt: AlertFilter, by: str) -> list[tuple[str, int]]:
        data = self.get("/alerts/groups", {**filter_params(flt), "by": by})
        return [(g["value"], g["count"]) for g in data["groups"]]

    def show(self, alert_id: str) -> dict[str, Any]:
        return self.get(f"/alerts/{urllib.parse.quote(str(alert_id), safe='')}")

    def act(self, action: str, ids: list[str], value: str | None) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"ids": ids}
        if action in ("status", "severity"):
            body[action] = value
        return self.post(f"/alerts/{action}", body)["results"]

    def export(self, flt: AlertFilter) -> Iterator[bytes]:
        return self.stream("/alerts/export.csv", filter_params(flt))

    def request_pcap(self, alert_id: str, fresh: bool = False) -> dict[str, Any]:
        quoted = urllib.parse.quote(str(alert_id), safe="")
        return self.post(f"/alerts/{quoted}/pcap", params={"fresh": "true"} if fresh else None)

    def pcap_status(self, request_id: str) -> dict[str, Any]:
        return self.get(f"/pcap/{urllib.parse.quote(request_id, safe='')}")

    def download(
        self, view: dict[str, Any], output: str | Path, force: bool = False
    ) -> tuple[int, str]:
        """Write the PCAP to ``output`` (through :func:`otwatch.fileout.open_output`; ``-``:
        standard output), verifying its SHA-256: a mismatching download is not kept."""
        sha, size = hashlib.sha256(), 0
        if is_stdout(output):  # cannot be taken back once written: verify before writing
            blocks = list(self.stream(f"/pcap/{view['request_id']}/file"))
            for block in blocks:
                sha.update(block)
                size += len(block)
            self._verify(view, sha.hexdigest(), size)
            with open_output(output) as out:
                out.writelines(blocks)
            return size, sha.hexdigest()
        with open_output(output, force=force) as out:
            for block in self.stream(f"/pcap/{view['request_id']}/file"):
                out.write(block)
                sha.update(block)
                size += len(block)
            self._verify(view, sha.hexdigest(), size)
        return size, sha.hexdigest()

    @staticmethod
    def _verify(view: dict[str, Any], digest: str, size: int) -> None:
        if digest != view["sha256"] or size != view["size"]:
            raise CentralApiError(
                f"downloaded PCAP does not match its SHA-256 {view['sha256']} "
                f"({size} bytes); not written"
            )


def _http_error(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', ())[1:])}: {d.get('msg')}" for d in detail
        )
    text = detail or response.reason_phrase
    if response.status_code == 401:
        return f"central refused the token (401): {text}"
    if response.status_code == 403:
        return f"permission denied (403): {text}"
    return f"central: {text} ({response.status_code})"


def filter_params(flt: AlertFilter) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, values in (
        ("status", flt.statuses),
        ("severity", flt.severities),
        ("engine", flt.engines),
        ("category", flt.categories),
        ("sensor", flt.sensors),
        ("site", flt.sites),
        ("zone", flt.zones),
        ("protocol", flt.protocols),
        ("type", flt.types),
    ):
        if values:
            params[key] = list(values)
    for key, value in (("source", flt.source), ("destination", flt.destination),
                       ("search", flt.search)):  # fmt: skip
        if value:
            params[key] = value
    if flt.since_ns is not None:
        params["since"] = format_iso(flt.since_ns)
    if flt.until_ns is not None:
        params["until"] = format_iso(flt.until_ns)
    return params


def client_from(ctx: click.Context | None = None) -> CentralClient | None:
    """The client when ``--central`` was given (anywhere up the command line), else None."""
    ctx = ctx or click.get_current_context()
    settings = ctx.meta.get(_META) or {}
    url = settings.get("url")
    if not url:
        return None
    token = settings.get("token")
    if not token:
        raise click.UsageError("--central needs --token (or OTWATCH_CENTRAL_TOKEN)")
    return CentralClient(url, token)


def central_id(value: int | str) -> str:
    if isinstance(value, int) or str(value).isdigit():
        raise click.BadParameter(
            f"{value} is a sensor alert id; with --central use the central id "
            "<sensor alert id>-<sensor id>, e.g. 42-sensor1",
            param_hint="ID",
        )
    return str(value)


def report_results(results: list[dict[str, Any]], fmt: str) -> None:
    """Per-id outcome (sensor and central alike): applied and unchanged ids on stdout, then
    a ``ClickException`` (exit 1) naming each refused or unknown id, one ``error:`` line each;
    with ``--format json`` the JSON stays alone on stdout and the error is one summary line."""
    from otwatch.cli.output import print_json

    done = ("applied", "unchanged")
    failed = [r for r in results if r["outcome"] not in done]
    if fmt == "json":
        print_json(results)
        if failed:
            raise click.ClickException(f"{len(failed)} of {len(results)} alert(s) not changed")
        return
    for r in results:
        if r["outcome"] in done:
            click.echo(f"{r['outcome']}: {r['message']}")
    if failed:
        # main() prints "error: " before the message: one such line per failed id
        raise click.ClickException("\nerror: ".join(r["message"] for r in failed))


def pull_pcap(
    client: CentralClient,
    alert_id: str,
    output: str | Path,
    *,
    wait_s: float,
    fresh: bool = False,
    force: bool = False,
    interval_s: float = 1.0,
) -> None:
    """Ask central for the alert's PCAP, show progress while waiting, write and verify it."""
    view = client.request_pcap(alert_id, fresh=fresh)
    deadline = time.monotonic() + wait_s
    last = None
    while view["state"] == "pending":
        line = view["message"]
        if line != last:
            click.echo(f"pcap {alert_id}: {line}", err=True)
            last = line
        if time.monotonic() >= deadline:
            raise CentralApiError(
                f"PCAP of alert {alert_id} still pending after {wait_s:.0f} s ({line}); "
                "the request stays open: run the same command again later to fetch it"
            )
        time.sleep(interval_s)
        view = client.pcap_status(view["request_id"])
    if view["state"] != "done":
        raise CentralApiError(f"PCAP of alert {alert_id}: {view['state']}: {view['message']}")
    size, sha = client.download(view, output, force)
    click.echo(
        f"wrote {size:,} bytes of alert {alert_id} to "
        f"{'standard output' if is_stdout(output) else output} (SHA-256 {sha} verified; "
        f"from sensor {view['sensor']}, cached centrally until {view['expires']})",
        err=True,
    )
