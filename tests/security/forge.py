"""A hostile MQTT peer for the sync attack tests: a paho MQTT v5 client that publishes
forged sensor or central messages on a real Mosquitto and records what it receives, plus
builders for the messages themselves and a small HTTP client for central's API."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from otwatch.sync.protocol.messages import VERSION, encode_raw
from otwatch.sync.protocol.topics import down_topic, up_topic
from tests.centralapi import snapshot
from tests.integration.mqtt_broker import HOST

__all__ = ["Peer", "api", "birth", "command", "event_batch", "snapshot", "status"]

MAX_HLC = (1 << 63) - 1


class Peer:
    """A raw MQTT v5 client on the (anonymous, loopback) broker."""

    def __init__(self, port: int, client_id: str | None = None) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        connected = threading.Event()
        c = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5,
                        client_id=client_id or f"forger-{uuid.uuid4().hex[:8]}")  # fmt: skip
        c.on_connect = lambda *_a: connected.set()
        c.on_message = self._on_message
        c.connect(HOST, port, keepalive=30)
        c.loop_start()
        assert connected.wait(10), "forging peer did not connect"
        self.c = c

    def _on_message(self, _c: Any, _u: Any, m: Any) -> None:
        with self._lock:
            self.received.append((m.topic, bytes(m.payload)))

    def subscribe(self, topic: str) -> None:
        self.c.subscribe(topic, qos=1)[1]
        time.sleep(0.2)  # the SUBACK; only bounds how long we wait

    def publish(self, topic: str, payload: bytes | dict, *, retain: bool = False) -> None:
        body = encode_raw(payload) if isinstance(payload, dict) else payload
        self.c.publish(topic, body, qos=1, retain=retain).wait_for_publish(10)

    def messages(self, suffix: str) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p in self.received if t.endswith(suffix)]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def birth(sensor_id: str, epoch: str, *, site: str = "plant", zone: str = "z1",
          acked_hw: int = 0, last_seq: int = 0) -> tuple[str, dict]:  # fmt: skip
    body = {"v": VERSION, "sensor_id": sensor_id, "epoch": epoch, "version": "forged",
            "site": site, "zone": zone, "acked_hw": acked_hw, "last_seq": last_seq,
            "ts_ns": time.time_ns()}  # fmt: skip
    return up_topic(sensor_id, "birth"), body


def status(sensor_id: str, state: str = "online") -> tuple[str, dict]:
    body = {"v": VERSION, "sensor_id": sensor_id, "state": state, "version": "forged",
            "ts_ns": time.time_ns()}  # fmt: skip
    return up_topic(sensor_id, "status"), body


def event_batch(sensor_id: str, epoch: str, snapshots: list[dict], first_seq: int = 1):
    events = [
        {
            "seq": first_seq + i,
            "id": str(uuid.uuid4()),
            "kind": "alert",
            "alert_id": s["id"],
            "ts_ns": time.time_ns(),
            "alert": s,
            "change": None,
        }
        for i, s in enumerate(snapshots)
    ]
    body = {"v": VERSION, "sensor_id": sensor_id, "epoch": epoch, "events": events}
    return up_topic(sensor_id, "events"), body


def command(sensor_id: str, kind: str, alert_id: int, value: str | None, hlc: int):
    cmd = {"id": str(uuid.uuid4()), "kind": kind, "alert_id": alert_id, "value": value,
           "hlc": hlc, "actor": "forged", "issued_ns": time.time_ns()}  # fmt: skip
    body = {"v": VERSION, "sensor_id": sensor_id, "commands": [cmd]}
    return down_topic(sensor_id, "commands"), body, cmd["id"]


def api(url: str, token: str | None, method: str, path: str, body: Any = None):
    """(status code, decoded JSON body) of one request to central's API."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}/api/v1{path}", data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def central_connected(central: Any, timeout: float = 20) -> None:
    """Wait until a ``CentralProcess`` is subscribed (its API answers before that; a message
    published earlier would reach nobody)."""
    from otwatch.demo.parts import wait_until

    wait_until(lambda: "connected to" in central.log.read_text(), timeout, "central's MQTT")
