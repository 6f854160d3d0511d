"""Topic layout: builders and the strict parser agree; anything off-layout is refused."""

from __future__ import annotations

import pytest

from otwatch.sync.protocol.topics import (
    Direction,
    TopicError,
    central_subscription,
    down_topic,
    parse_topic,
    sensor_subscription,
    up_topic,
)

RID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


@pytest.mark.parametrize("kind", ["events", "acks", "status", "birth"])
def test_up_topics_round_trip(kind):
    topic = up_topic("plant-1.s2", kind)
    assert topic == f"otwatch/v1/plant-1.s2/up/{kind}"
    assert parse_topic(topic) == (parse_topic(topic).__class__)("plant-1.s2", Direction.UP, kind)


def test_pcap_topic_carries_the_request_id():
    parsed = parse_topic(up_topic("s1", "pcap", RID))
    assert (parsed.kind, parsed.request_id) == ("pcap", RID)


@pytest.mark.parametrize("kind", ["commands", "acks", "birth"])
def test_down_topics_round_trip(kind):
    parsed = parse_topic(down_topic("s1", kind))
    assert (parsed.sensor_id, parsed.direction, parsed.kind) == ("s1", Direction.DOWN, kind)


@pytest.mark.parametrize(
    "topic",
    [
        "otwatch/v2/s1/up/events",
        "other/v1/s1/up/events",
        "otwatch/v1/s1/sideways/events",
        "otwatch/v1/s1/up/commands",
        "otwatch/v1/s1/down/events",
        "otwatch/v1/s1/up/events/extra",
        "otwatch/v1/+/up/events",
        "otwatch/v1/-bad/up/events",
        "otwatch/v1/s1/up/pcap",
        "otwatch/v1/s1/up/pcap/not-a-uuid",
        "otwatch/v1/s1/up",
        "",
    ],
)
def test_off_layout_topics_are_refused(topic):
    with pytest.raises(TopicError):
        parse_topic(topic)


def test_builders_refuse_bad_ids_and_kinds():
    with pytest.raises(TopicError):
        up_topic("a/b", "events")
    with pytest.raises(TopicError):
        up_topic("s1", "commands")
    with pytest.raises(TopicError):
        down_topic("s1", "events")
    with pytest.raises(TopicError):
        up_topic("s1", "pcap")


def test_subscriptions():
    assert sensor_subscription("s1") == "otwatch/v1/s1/down/#"
    assert central_subscription() == "otwatch/v1/+/up/#"
    assert central_subscription("g") == "$share/g/otwatch/v1/+/up/#"
