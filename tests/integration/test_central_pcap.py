"""A sensor that is online but never answers a PCAP request: central re-requests a bounded
number of times, then marks the request failed with the reason, which the API and the CLI
show; nothing more is sent to the sensor for it. Real Mosquitto, a real central instance
(``CentralNode`` + ``CentralService``), a fake sensor that only says it is online."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from otwatch.central.api import create_app
from otwatch.central.store.models import Sensor
from otwatch.cli.central_client import CentralApiError, pull_pcap
from otwatch.sync.protocol.messages import VERSION, encode_raw
from otwatch.sync.protocol.topics import sensor_subscription, up_topic
from otwatch.sync.transport import BrokerConfig, Connection, Will
from tests.centralapi import add_alerts, snapshot, token
from tests.integration.central_procs import NodeThread
from tests.integration.mqtt_broker import make_broker, mosquitto  # noqa: F401
from tests.integration.sync_procs import wait_until

API = "/api/v1"


class SilentSensor:
    """A raw MQTT client as sensor s1: publishes a retained online status, records the
    commands it receives, and never answers one."""

    def __init__(self, broker_url: str) -> None:
        self.cfg = BrokerConfig().with_url(broker_url)
        self.commands: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._run(),))

    def status(self, state: str) -> bytes:
        body = {"v": VERSION, "sensor_id": "s1", "state": state, "version": "fake",
                "ts_ns": time.time_ns()}  # fmt: skip
        return encode_raw(body)

    async def _run(self) -> None:
        self.stop = asyncio.Event()
        will = Will(up_topic("s1", "status"), self.status("offline"))
        async with Connection(self.cfg, "fake-s1", will=will) as conn:
            await conn.subscribe(sensor_subscription("s1"))
            await conn.publish(up_topic("s1", "status"), self.status("online"), retain=True)
            self.ready.set()

            async def receive() -> None:
                async for message in conn.messages():
                    if message.topic.endswith("/down/commands"):
                        self.commands.extend(json.loads(message.payload)["commands"])

            task = asyncio.ensure_future(receive())
            await self.stop.wait()
            task.cancel()

    def start(self) -> SilentSensor:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)

    def pcap_commands(self) -> list[dict]:
        return [c for c in self.commands if c["kind"] == "pcap"]


class LoopCommander:
    """The API's commander: the instance's service, on its own event loop."""

    def __init__(self, node: NodeThread) -> None:
        self.node = node

    async def issue_command(self, sensor_id, kind, **kwargs):
        future = asyncio.run_coroutine_threadsafe(
            self.node.service.issue_command(sensor_id, kind, **kwargs), self.node.loop
        )
        return await asyncio.wrap_future(future)


class ApiClient:
    """The two calls of ``pull_pcap``, answered by the app in process."""

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def request_pcap(self, alert_id: str, fresh: bool = False) -> dict:
        return self.client.post(f"{API}/alerts/{alert_id}/pcap", headers=self.headers).json()

    def pcap_status(self, request_id: str) -> dict:
        return self.client.get(f"{API}/pcap/{request_id}", headers=self.headers).json()


def sensor_online(store, sensor_id: str) -> bool:
    with store.session() as s:
        row = s.get(Sensor, sensor_id)
        return bool(row and row.online)


@pytest.fixture
def central(tmp_path, mosquitto):  # noqa: F811
    cfg = BrokerConfig().with_url(mosquitto.url)
    node = NodeThread(
        f"sqlite:///{tmp_path / 'central.db'}",
        cfg,
        client_id="central-1",
        share_group=None,
        pcap_dir=tmp_path / "pcap",
        poll_interval_s=0.1,
    ).start()
    node.wait_connected()
    node.engine.pcap.stall_ns = 300_000_000
    node.engine.pcap.max_rerequests = 3
    add_alerts(node.store, "s1", [snapshot(1)])
    sensor = SilentSensor(mosquitto.url).start()
    yield node, sensor
    sensor.close()
    node.stop()


def test_a_silent_online_sensor_ends_in_failed_with_the_reason(central):
    node, sensor = central
    wait_until(lambda: sensor_online(node.store, "s1"), 10, "s1 online centrally")
    app = create_app(
        node.store, LoopCommander(node), node.pcaps, progress=node.engine.pcap_progress
    )
    headers = {"Authorization": f"Bearer {token(node.store, 'ops', 'admin')}"}
    with TestClient(app) as client:
        api = ApiClient(client, headers)
        with pytest.raises(CentralApiError) as info:
            pull_pcap(api, "1-s1", node.pcap_dir / "out.pcap", wait_s=60, interval_s=0.05)
        message = str(info.value)
        assert "failed" in message and "was online but never sent a chunk" in message
        assert "3 re-requests" in message
        # the first request and exactly max_rerequests re-requests reached the sensor
        wait_until(lambda: len(sensor.pcap_commands()) == 4, 10, "four pcap commands")
        request_ids = {c["request_id"] for c in sensor.pcap_commands()}
        assert len(request_ids) == 1
        [request_id] = request_ids
        view = api.pcap_status(request_id)
        assert view["state"] == "failed" and "request the PCAP again" in view["message"]
        # nothing more goes out for it: several stall periods later still four commands
        polls = node.engine.stats["pcap_failed"]
        time.sleep(1.0)
        assert len(sensor.pcap_commands()) == 4 and node.engine.stats["pcap_failed"] == polls
        assert request_id not in node.engine.pcap.transfers
    assert not (node.pcap_dir / "out.pcap").exists()
