"""Issue 15, item 7: one bad PCAP chunk no longer wedges a transfer. A sensor (a raw MQTT
client on a real Mosquitto) answers a real ``otwatch central run``'s PCAP request with a
chunk whose digest is wrong, then the right chunks: central starts the transfer over, asks
for the whole file again at once, and ends with the verified file. A sensor that never sends
a matching file is given up on after a bounded number of restarts."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from otwatch.demo.parts import wait_until
from otwatch.sync.protocol.messages import encode_pcap_chunk
from tests.centralapi import pcap_chunks
from tests.integration.central_procs import CentralProcess, otwatch
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.security.forge import Peer, api, birth, central_connected, event_batch, snapshot, status

BLOB = bytes(range(256)) * 20  # 5,120 bytes: six chunks of 1,000


@pytest.fixture
def plant(tmp_path, mosquitto):  # noqa: F811
    db_url = f"sqlite:///{tmp_path / 'central' / 'central.db'}"
    made = otwatch("central", "token", "create", "--name", "ops", "--role", "admin",
                   "--db", db_url)  # fmt: skip
    assert made.returncode == 0, made.stderr
    central = CentralProcess(tmp_path / "central", db_url, mosquitto.url).start()
    central_connected(central)
    sensor = Peer(mosquitto.port)
    sensor.subscribe("otwatch/v1/s1/down/#")
    epoch = str(uuid.uuid4())
    for topic, body in (birth("s1", epoch), status("s1")):
        sensor.publish(topic, body)
    wait_until(lambda: sensor.messages("/down/birth"), 20, "central's answer to the birth")
    sensor.publish(*event_batch("s1", epoch, [snapshot(1)]))
    admin = made.stdout.strip()
    wait_until(lambda: api(central.url, admin, "GET", "/alerts/1-s1")[0] == 200, 20, "alert")
    yield central, sensor, admin
    sensor.close()
    central.stop()


def _pcap_commands(sensor: Peer) -> list[dict]:
    return [c for m in sensor.messages("/down/commands") for c in m["commands"]
            if c["kind"] == "pcap"]  # fmt: skip


def _wrong_digest(payload: bytes, digest: str) -> bytes:
    head, data = payload.split(b"\n", 1)
    return encode_pcap_chunk({**json.loads(head), "sha256": digest}, data)


def _state(central: CentralProcess, admin: str, request_id: str) -> dict:
    code, view = api(central.url, admin, "GET", f"/pcap/{request_id}")
    assert code == 200, view
    return view


def test_a_transfer_recovers_after_a_chunk_with_a_wrong_digest(plant):
    central, sensor, admin = plant
    code, view = api(central.url, admin, "POST", "/alerts/1-s1/pcap")
    assert code == 200, view
    request_id = view["request_id"]
    wait_until(lambda: _pcap_commands(sensor), 20, "the PCAP command")
    chunks = pcap_chunks(BLOB, request_id)
    # the first chunk arrives damaged (wrong file digest), the others as they should
    sensor.publish(chunks[0][0], _wrong_digest(chunks[0][1], "0" * 64))
    for topic, payload in chunks[1:]:
        sensor.publish(topic, payload)
    # central starts over and asks for the whole file again (no chunk list), at once
    wait_until(lambda: len(_pcap_commands(sensor)) >= 2, 20, "the re-request")
    again = _pcap_commands(sensor)[1]
    assert again["request_id"] == request_id and again["chunks"] is None
    for topic, payload in chunks:
        sensor.publish(topic, payload)
    wait_until(lambda: _state(central, admin, request_id)["state"] == "done", 20, "done")
    req = urllib.request.Request(f"{central.url}/api/v1/pcap/{request_id}/file")
    req.add_header("Authorization", f"Bearer {admin}")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == BLOB
    assert "starting the transfer over (1 of at most 3)" in central.log.read_text()


def test_a_sensor_that_never_sends_a_matching_file_is_given_up_after_bounded_restarts(plant):
    central, sensor, admin = plant
    code, view = api(central.url, admin, "POST", "/alerts/1-s1/pcap")
    assert code == 200, view
    request_id = view["request_id"]
    answered = 0

    def answer_every_request() -> bool:
        nonlocal answered
        commands = _pcap_commands(sensor)
        for _ in commands[answered:]:  # always the same file, always with a wrong digest
            for topic, payload in pcap_chunks(BLOB, request_id):
                sensor.publish(topic, _wrong_digest(payload, "f" * 64))
        answered = len(commands)
        return _state(central, admin, request_id)["state"] != "pending"

    wait_until(answer_every_request, 60, "the request to end")
    final = _state(central, admin, request_id)
    assert final["state"] == "failed" and "started over 3 times" in final["message"], final
    assert answered == 4  # the request and one re-request per restart, nothing more
