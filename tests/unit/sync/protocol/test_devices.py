"""Device messages: a snapshot within the limits validates; hostile ones fail cleanly; the
protocol's device types are the sensor's."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from otwatch.agent.inventory.roles import DEVICE_TYPES as SENSOR_TYPES
from otwatch.sync.protocol import messages as m
from otwatch.sync.protocol.devices import DEVICE_TYPES, MAX_PEERS, DeviceOverrides

T0 = 1_800_000_000 * 1_000_000_000


def snapshot(**over: Any) -> dict[str, Any]:
    snap = {"id": 1, "key": "192.0.2.10", "ip": "192.0.2.10", "mac": "00:00:5e:00:53:01",
            "type": "PLC", "first_seen_ns": T0, "last_seen_ns": T0,
            "facts": [{"field": "vendor", "value": "Siemens", "source": "s7-szl", "ts_ns": T0}],
            "names": {"plc-1": "dns"}, "peer_addresses": ["192.0.2.20"]}  # fmt: skip
    snap.update(over)
    return snap


def batch(device: Any, **event: Any) -> bytes:
    body = {"v": 1, "sensor_id": "s1", "epoch": str(uuid.uuid4()),
            "events": [{"seq": 1, "id": str(uuid.uuid4()), "kind": "device", "ts_ns": T0,
                        "device_id": 1, "device": device, **event}]}  # fmt: skip
    return json.dumps(body).encode()


def test_device_types_are_the_sensors():
    assert DEVICE_TYPES == SENSOR_TYPES


def test_a_device_event_validates():
    decoded = m.decode(m.EventBatch, batch(snapshot()), m.MAX_BYTES["events"])
    [event] = decoded.events
    assert event.device is not None and event.device.facts[0].source == "s7-szl"
    forgotten = m.decode(m.EventBatch, batch(None), m.MAX_BYTES["events"])
    assert forgotten.events[0].device is None


@pytest.mark.parametrize(
    "over",
    [
        {"peer_addresses": ["192.0.2.1"] * (MAX_PEERS + 1)},  # oversized list
        {"names": {f"n{i}": "dns" for i in range(17)}},
        {"name": "x" * 256},  # oversized string
        {"type": "Toaster"},  # not a device type
        {"purdue_level": 6},
        {"peers": "7"},  # wrong type (strict)
        {"facts": [{"field": "vendor", "value": 5, "source": "x", "ts_ns": 0}]},
        {"colour": "red"},  # unknown key
        {"first_seen_ns": -1},
    ],
)
def test_hostile_snapshots_are_invalid(over):
    with pytest.raises(m.ProtocolError) as err:
        m.decode(m.EventBatch, batch(snapshot(**over)), m.MAX_BYTES["events"])
    assert err.value.reason == "invalid" and "events.0.device" in err.value.detail


def test_override_keys_given_are_the_ones_set():
    o = DeviceOverrides.model_validate_json(b'{"name": null, "purdue_level": 2}')
    assert o.model_fields_set == {"name", "purdue_level"} and o.purdue_level == 2
    with pytest.raises(ValueError):
        DeviceOverrides.model_validate_json(b'{"type": "Toaster"}')
