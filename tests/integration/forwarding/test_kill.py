"""``kill -9`` of the forwarding daemon mid-send loses nothing committed: after a restart
every alert arrives, first occurrences in order; duplicates are only the chunk that was in
flight (at least once, de-duplicated by the stable event id)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from otwatch.agent.store.forwarding import sensor_backend
from otwatch.forwarding.repository import add_rule, parse_rule_spec
from tests.forwarding.samples import manager, raise_alert

TOTAL = 600
BATCH = 10


def _daemon(data_dir):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otwatch.cli",
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
            "forwarding",
            "run",
            "--poll",
            "0.05",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_kill_9_mid_send_then_restart_delivers_everything(tmp_path, webhook, test_ca):
    from otwatch.agent.store.db import open_store

    data = tmp_path / "data"
    store = open_store(data)
    backend = sensor_backend(store)
    with store.session() as session:
        add_rule(
            session,
            backend,
            parse_rule_spec(
                {
                    "name": "hook",
                    "targets": [
                        {
                            "kind": "webhook",
                            "url": webhook.url,
                            "ca_file": test_ca.path("ca.pem"),
                            "batch": BATCH,
                        }
                    ],
                }
            ),
            "tester",
        )
    mgr = manager(store)
    for n in range(TOTAL):
        raise_alert(mgr, n)
    mgr.flush()
    store.close()
    webhook.delay_s = 0.01  # slow enough that the kill lands mid-stream
    first = _daemon(data)
    try:
        _wait(lambda: len(webhook.requests) >= 15)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    got_before_restart = len(webhook.events())
    assert got_before_restart < TOTAL
    webhook.delay_s = 0
    second = _daemon(data)
    try:
        _wait(lambda: len({e["event"]["id"] for e in webhook.events()}) >= TOTAL)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, second.stderr.read().decode()
    events = webhook.events()
    unique: dict[str, int] = {}
    for e in events:
        unique.setdefault(e["event"]["id"], e["otwatch"]["alert"]["id"])
    ids = list(unique.values())
    assert len(ids) == TOTAL and ids == sorted(ids)
    assert len(events) - TOTAL <= BATCH  # at most the request in flight came twice
