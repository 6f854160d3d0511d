"""Webhooks to a local HTTPS receiver with its own certificate: headers, HMAC signature,
retries after 500s with order kept, batching, TLS verification, and ``forwarding test``."""

from __future__ import annotations

import hashlib
import hmac

from otwatch.agent.store.forwarding import sensor_backend
from otwatch.forwarding.probe import probe_targets
from otwatch.forwarding.repository import add_rule, list_rules, parse_rule_spec
from otwatch.forwarding.targets.base import WebhookSpec
from tests.forwarding.running import run_forwarder
from tests.forwarding.samples import manager, raise_alert

SECRET = b"s3cret-key\n"


def _rule(store, webhook, tmp_path, **target):
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "token").write_text("Splunk 1234-abcd\n")
    spec = {
        "kind": "webhook",
        "url": webhook.url,
        "secret_file": str(tmp_path / "secret"),
        "ca_file": str(webhook_ca(webhook)),
        "batch": 1,
        "headers": {"X-Tenant": "plant-7", "Authorization": f"@{tmp_path / 'token'}"},
    }
    backend = sensor_backend(store)
    with store.session() as session:
        add_rule(
            session,
            backend,
            parse_rule_spec({"name": "hook", "targets": [spec | target]}),
            "tester",
        )
    return backend


def webhook_ca(webhook):
    return webhook.ca_path


def _raise(store, count):
    mgr = manager(store)
    for n in range(count):
        raise_alert(mgr, n)
    mgr.flush()


def _check_signature(request):
    expected = "sha256=" + hmac.new(SECRET.rstrip(b"\n"), request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Otwatch-Signature"] == expected


def test_one_alert_per_request_signed_with_headers_retried_in_order(store, webhook, tmp_path):
    backend = _rule(store, webhook, tmp_path)
    webhook.fail = 3  # the first three requests get HTTP 500
    _raise(store, 30)
    run_forwarder(backend, lambda: len(webhook.requests) >= 30)
    assert len(webhook.failures) == 3
    for request in webhook.requests:
        assert request.path == "/hook"
        assert request.headers["Content-Type"] == "application/json"
        assert request.headers["X-Tenant"] == "plant-7"
        assert request.headers["Authorization"] == "Splunk 1234-abcd"
        _check_signature(request)
    events = webhook.events()
    ids = [e["otwatch"]["alert"]["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 30 == len(ids)
    assert all(e["event"]["kind"] == "alert" for e in events)
    with store.session() as session:
        target = list_rules(session, backend)[0]["targets"][0]
    assert (target["sent"], target["failed"]) == (30, 3)
    assert "HTTP 500 Internal Server Error: receiver says no: disk full" in target["last_error"]


def test_batched_requests_carry_json_arrays(store, webhook, tmp_path):
    backend = _rule(store, webhook, tmp_path, batch=50)
    _raise(store, 120)
    run_forwarder(backend, lambda: len(webhook.events()) >= 120)
    sizes = [len(r.json()) for r in webhook.requests]
    assert sum(sizes) == 120 and max(sizes) <= 50 and isinstance(webhook.requests[0].json(), list)
    for request in webhook.requests:
        _check_signature(request)
    ids = [e["otwatch"]["alert"]["id"] for e in webhook.events()]
    assert ids == sorted(ids) and len(set(ids)) == 120


def test_tls_is_verified_by_default_and_test_reports_exact_errors(webhook, test_ca):
    [untrusted] = probe_targets([WebhookSpec(url=webhook.url)], "s1")
    assert not untrusted.ok and "TLS certificate verify failed" in untrusted.error
    [ok] = probe_targets([WebhookSpec(url=webhook.url, ca_file=test_ca.path("ca.pem"))], "s1")
    assert ok.ok, ok.error
    [sent] = webhook.events()
    assert sent["event"]["action"] == "test" and "TEST" in sent["message"]
    webhook.fail = 1
    [failed] = probe_targets([WebhookSpec(url=webhook.url, ca_file=test_ca.path("ca.pem"))], "s1")
    assert failed.error.endswith("HTTP 500 Internal Server Error: receiver says no: disk full")
    webhook.close()
    [refused] = probe_targets([WebhookSpec(url=webhook.url, ca_file=test_ca.path("ca.pem"))], "s1")
    assert refused.error.endswith("connection refused")
