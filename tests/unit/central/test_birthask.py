"""Central asks a sensor of an unknown stream for its birth at most once per interval."""

from __future__ import annotations

from otwatch.central.birthask import BirthAsks
from tests.factories import SEC


def test_one_question_per_sensor_per_interval():
    asks = BirthAsks(interval_ns=10 * SEC)
    assert asks.due("s1", 0)
    assert not asks.due("s1", 9 * SEC)
    assert asks.due("s2", 9 * SEC)  # per sensor
    assert asks.due("s1", 10 * SEC)


def test_remembered_sensors_stay_bounded():
    asks = BirthAsks(interval_ns=10 * SEC, max_sensors=3)
    assert all(asks.due(f"s{i}", 0) for i in range(3))
    assert not asks.due("s9", 1)  # full, and nobody's interval is over
    assert asks.due("s9", 11 * SEC)  # the old ones expired and were forgotten
    assert len(asks._last) == 1
