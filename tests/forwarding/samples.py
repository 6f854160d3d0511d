"""Alerts with hostile values, made through the real alert manager or by hand for the pure
formatter tests."""

from __future__ import annotations

from typing import Any

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.alerts.ratelimit import RateLimit
from otwatch.agent.engines.detection import DetectionFactory
from otwatch.alerts.catalog import load_catalog
from otwatch.forwarding.events import ForwardEvent

T0 = 1_790_000_000 * 1_000_000_000
HOSTILE = 'pipe| eq= back\\ slash\\| new\nline cr\r tab\t quote" bracket] ü 日本 \x00ctl'
LONG_UA = "Mozilla/5.0 " + "A|=\\" * 2048  # 8 KB user agent full of CEF specials


def hostile_alert(**overrides: Any) -> dict[str, Any]:
    alert = {
        "id": 42,
        "type": "unauthorized_http_user_agent",
        "name": f"Name {HOSTILE}",
        "engine": "policy_violation",
        "category": f"Cat {HOSTILE}",
        "severity": "high",
        "status": "new",
        "close_reason": None,
        "source_address": "192.0.2.10",
        "destination_address": "2001:db8::1",
        "source_mac": "02:00:00:00:00:01",
        "destination_mac": None,
        "protocol": "http",
        "first_detection": "2026-09-21T14:13:20.000000Z",
        "last_detection": "2026-09-21T14:13:21.500000Z",
        "last_activity": "2026-09-21T14:13:21.500000Z",
        "detections": 3,
        "sensor": "s1",
        "site": f"site {HOSTILE}",
        "zone": "zone=1",
        "tactics": ["Impair Process Control", "Evasion"],
        "learnable": True,
        "message": f"user agent {LONG_UA} {HOSTILE}",
        "remediation": ["Check it"],
        "fields": {"user_agent": LONG_UA},
    }
    alert.update(overrides)
    return alert


def event(kind: str = "new", **overrides: Any) -> ForwardEvent:
    return ForwardEvent(
        "0f0e0d0c-0000-5000-8000-000000000001", kind, hostile_alert(**overrides), T0
    )


def manager(store, *, site: str = "plant", zone: str = "cell") -> AlertManager:
    """The real alert manager without the per-type rate limit (tests raise many alerts)."""
    return AlertManager(
        store, load_catalog(), sensor_id="s1", site=site, zone=zone, rate_limit=RateLimit(limit=0)
    )


def raise_alert(
    mgr: AlertManager,
    n: int,
    message: str | None = None,
    type_id: str = "unpermitted_usage_of_modbus_function_code",
    **fields: Any,
) -> None:
    """One new alert through the real manager (distinct traffic per ``n``)."""
    factory = DetectionFactory(mgr.catalog)
    fields.setdefault("protocol", "modbus")
    fields.setdefault("function_code", 90)
    src = f"192.0.2.{n % 250 + 1}"
    dst = f"198.51.100.{n // 250 % 250 + 1}"
    det = factory.make(
        type_id,
        T0 + n,
        message or f"{src} → {dst} #{n}",
        source_address=src,
        destination_address=dst,
        **fields,
    )
    mgr.observe(det)
