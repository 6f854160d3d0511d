"""Sensor messages validated before ``CentralSync`` applies them: an ``up/events`` batch is
checked as a whole and event by event (an invalid event is dropped alone), on any thread."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from otwatch.sync.protocol.messages import (
    MAX_BYTES,
    Event,
    EventBatch,
    EventEnvelope,
    ProtocolError,
    decode,
)
from otwatch.sync.protocol.topics import Direction, TopicError, parse_topic

__all__ = ["DecodedEvents", "Received", "decode_events", "events_sensor"]

log = logging.getLogger(__name__)


def events_sensor(topic: str) -> str | None:
    """The sensor id of an ``up/events`` topic, else None."""
    try:
        parsed = parse_topic(topic)
    except TopicError:
        return None
    if parsed.direction == Direction.UP and parsed.kind == "events":
        return parsed.sensor_id
    return None


@dataclass(frozen=True, slots=True)
class DecodedEvents:
    """An ``up/events`` message validated (``decode_events``), not yet applied."""

    batch: Any
    """``EventBatch``, or ``EventEnvelope`` when some events were invalid."""
    events: list[Event]
    bad: list[int]
    """Sequence numbers of invalid events (committed as skipped)."""
    unseqable: int = 0
    """Invalid events without a possible sequence number (only counted)."""


def decode_events(payload: bytes) -> DecodedEvents:
    """Validate an event batch; an invalid event is dropped alone (``ProtocolError`` for a
    message that is invalid as a whole)."""
    try:
        batch = decode(EventBatch, payload, MAX_BYTES["events"])
        return DecodedEvents(batch, list(batch.events), [])
    except ProtocolError as exc:
        if exc.reason != "invalid":
            raise
    envelope = decode(EventEnvelope, payload, MAX_BYTES["events"])
    good: list[Event] = []
    bad: list[int] = []
    unseqable = 0
    for raw in envelope.events:
        try:
            good.append(Event.model_validate(raw))
        except ValidationError as exc:
            seq = raw.get("seq") if isinstance(raw, dict) else None
            first = exc.errors(include_url=False)[0]
            log.warning("invalid event %s dropped: %s %s", seq, first["loc"], first["msg"])
            # Its seq is committed (skipped) only if a sensor could have written it
            # (``messages.Seq``): a gap below an impossible one would never close.
            if type(seq) is int and 0 < seq < 1 << 63:
                bad.append(seq)
            else:
                unseqable += 1
    return DecodedEvents(envelope, good, bad, unseqable)


Received = tuple[str, bytes] | tuple[str, bytes, "DecodedEvents | ProtocolError | None"]
"""A message as ``CentralSync.on_messages`` takes it: topic, payload and, optionally, its
``predecode`` result."""
