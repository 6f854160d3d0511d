"""MQTT topic layout, split by direction so one broker ACL pattern per direction covers every
sensor: ``otwatch/v1/{sensor_id}/up/…`` is written only by that sensor, ``…/down/…`` only by
central.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "PREFIX",
    "Direction",
    "ParsedTopic",
    "TopicError",
    "central_subscription",
    "down_topic",
    "parse_topic",
    "sensor_subscription",
    "up_topic",
]

PREFIX = "otwatch/v1"
SENSOR_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
REQUEST_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

UP_KINDS = frozenset({"events", "acks", "status", "birth", "pcap"})
DOWN_KINDS = frozenset({"commands", "acks", "birth"})


class Direction(StrEnum):
    UP = "up"
    """Published by the sensor."""
    DOWN = "down"
    """Published by central."""


class TopicError(ValueError):
    """A topic outside the layout (wrong prefix, bad sensor id, unknown kind)."""


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    sensor_id: str
    direction: Direction
    kind: str
    request_id: str | None = None
    """Only for ``up/pcap/{request_id}``."""


def _check_sensor(sensor_id: str) -> str:
    if not SENSOR_ID.match(sensor_id):
        raise TopicError(f"invalid sensor id {sensor_id!r} in topic")
    return sensor_id


def up_topic(sensor_id: str, kind: str, request_id: str | None = None) -> str:
    if kind not in UP_KINDS:
        raise TopicError(f"unknown up topic kind {kind!r}")
    base = f"{PREFIX}/{_check_sensor(sensor_id)}/up/{kind}"
    if kind == "pcap":
        if request_id is None or not REQUEST_ID.match(request_id):
            raise TopicError(f"pcap topic needs a request id, got {request_id!r}")
        return f"{base}/{request_id}"
    return base


def down_topic(sensor_id: str, kind: str) -> str:
    if kind not in DOWN_KINDS:
        raise TopicError(f"unknown down topic kind {kind!r}")
    return f"{PREFIX}/{_check_sensor(sensor_id)}/down/{kind}"


def sensor_subscription(sensor_id: str) -> str:
    """What a sensor subscribes to: everything central sends it."""
    return f"{PREFIX}/{_check_sensor(sensor_id)}/down/#"


def central_subscription(share_group: str | None = None) -> str:
    """What central subscribes to; a shared subscription spreads sensors over instances."""
    topic = f"{PREFIX}/+/up/#"
    return f"$share/{share_group}/{topic}" if share_group else topic


def parse_topic(topic: str) -> ParsedTopic:
    """Split a topic of the layout; raises ``TopicError`` for anything else."""
    parts = topic.split("/")
    if len(parts) < 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        raise TopicError(f"topic {topic[:200]!r} is not under {PREFIX}/")
    sensor_id = _check_sensor(parts[2])
    try:
        direction = Direction(parts[3])
    except ValueError:
        raise TopicError(f"topic {topic[:200]!r} has no up/down direction") from None
    kind = parts[4]
    kinds = UP_KINDS if direction == Direction.UP else DOWN_KINDS
    if kind not in kinds:
        raise TopicError(f"unknown {direction.value} topic kind {kind!r}")
    if kind == "pcap":
        if len(parts) != 6 or not REQUEST_ID.match(parts[5]):
            raise TopicError(f"pcap topic {topic[:200]!r} needs one request id")
        return ParsedTopic(sensor_id, direction, kind, parts[5])
    if len(parts) != 5:
        raise TopicError(f"topic {topic[:200]!r} has extra levels")
    return ParsedTopic(sensor_id, direction, kind)
