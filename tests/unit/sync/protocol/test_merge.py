"""The per-field merge: order-independent, idempotent, counters only grow."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from otwatch.sync.protocol.merge import merge_alert

BASE = {
    "detections": 1,
    "first_detection_ns": 100,
    "last_detection_ns": 100,
    "last_activity_ns": 100,
    "name": "x",
}

copies = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["new", "active", "closed"]),
        "close_reason": st.sampled_from([None, "manual", "learned", "muted"]),
        "status_hlc": st.integers(0, 5),
        "status_origin": st.sampled_from(["sensor", "central"]),
        "severity": st.sampled_from(["low", "medium", "high"]),
        "severity_hlc": st.integers(0, 5),
        "severity_origin": st.sampled_from(["sensor", "central"]),
        "detections": st.integers(1, 50),
        "first_detection_ns": st.integers(0, 100),
        "last_detection_ns": st.integers(100, 200),
        "last_activity_ns": st.integers(100, 200),
    }
)


def fold(rows):
    out = None
    for row in rows:
        out = merge_alert(out, {**BASE, **row})
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(copies, min_size=1, max_size=4))
def test_every_order_gives_the_same_result(rows):
    results = {tuple(sorted(fold(p).items())) for p in itertools.permutations(rows)}
    assert len(results) == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(copies, min_size=1, max_size=4))
def test_merging_again_changes_nothing(rows):
    once = fold(rows)
    assert fold([*rows, *rows]) == once
    assert once["detections"] == max(r["detections"] for r in rows)


def test_later_clock_wins_and_central_wins_a_tie():
    sensor = {**BASE, "status": "active", "close_reason": None, "status_hlc": 5,
              "status_origin": "sensor", "severity": "low", "severity_hlc": 5}  # fmt: skip
    central = {**sensor, "status": "closed", "close_reason": "manual", "status_origin": "central"}
    assert merge_alert(sensor, central)["status"] == "closed"
    assert merge_alert(central, sensor)["status"] == "closed"
    later = {**sensor, "status_hlc": 6}
    assert merge_alert(central, later)["status"] == "active"
