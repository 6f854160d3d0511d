"""Message schemas: the documented examples validate; hostile payloads fail with a reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from otwatch.sync.protocol import messages as m

DOC = Path(__file__).resolve().parents[4] / "docs" / "protocol.md"
EXAMPLE = re.compile(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", re.S)
LIMITS = {
    "EventBatch": "events",
    "EventAck": "acks_down",
    "SensorBirth": "birth",
    "CentralBirth": "birth",
    "SensorStatus": "status",
    "CommandBatch": "commands",
    "CommandAcks": "acks_up",
    "PcapChunk": "pcap",
}


def examples() -> dict[str, bytes]:
    return {name: body.encode() for name, body in EXAMPLE.findall(DOC.read_text())}


def test_the_doc_has_an_example_of_every_message():
    assert set(examples()) == set(LIMITS)


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_documented_example_validates_and_round_trips(name):
    model = getattr(m, name)
    payload = examples()[name]
    message = m.decode(model, payload, m.MAX_BYTES[LIMITS[name]])
    assert message.v == m.VERSION
    assert m.decode(model, m.encode(message), m.MAX_BYTES[LIMITS[name]]) == message


def batch() -> dict:
    return json.loads(examples()["EventBatch"])


def reason(model, payload: bytes, limit: int = 1 << 20) -> str:
    with pytest.raises(m.ProtocolError) as info:
        m.decode(model, payload, limit)
    return info.value.reason


def test_malformed_json():
    assert reason(m.EventBatch, b'{"v": 1, "sensor_id": ') == "malformed"
    assert reason(m.EventBatch, b"\xff\xfe") == "malformed"


def test_wrong_version():
    assert reason(m.EventBatch, json.dumps({**batch(), "v": 2}).encode()) == "version"


def test_oversized_is_refused_before_parsing():
    assert reason(m.EventAck, b"{" + b" " * 5000 + b"}", limit=4096) == "oversized"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(extra=1),
        lambda b: b.update(sensor_id="bad/id"),
        lambda b: b.update(events=[]),
        lambda b: b["events"][0].update(seq=0),
        lambda b: b["events"][0].update(seq="7"),
        lambda b: b["events"][0].update(id="not-a-uuid"),
        lambda b: b["events"][0]["alert"].update(status="reopened"),
        lambda b: b["events"][0]["alert"].update(message="x" * 5000),
        lambda b: b["events"][0]["alert"].update(detections=-1),
        lambda b: b["events"][0].update(kind="DROP TABLE"),
    ],
)
def test_invalid_fields_are_refused(mutate):
    body = batch()
    mutate(body)
    assert reason(m.EventBatch, json.dumps(body).encode()) == "invalid"


def test_too_many_events_are_refused():
    body = batch()
    body["events"] = body["events"][:1] * (m.MAX_EVENTS + 1)
    assert reason(m.EventBatch, json.dumps(body).encode(), limit=1 << 24) == "invalid"


def test_encode_raw_matches_the_model_form():
    body = json.loads(examples()["CommandAcks"])
    message = m.decode(m.CommandAcks, m.encode_raw(body), m.MAX_BYTES["acks_up"])
    assert message.acks[0].outcome == "refused"


def test_envelope_accepts_an_invalid_event_for_the_second_pass():
    body = batch()
    body["events"][0]["seq"] = -5
    envelope = m.decode(m.EventEnvelope, json.dumps(body).encode(), m.MAX_BYTES["events"])
    assert envelope.events[0]["seq"] == -5
