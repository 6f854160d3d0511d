"""Windowed counters: thresholds, windows, hard bounds."""

from __future__ import annotations

from otwatch.agent.engines.counters import DistinctCounter, RateCounter, remember


def test_rate_counter_reports_once_per_window():
    c = RateCounter(3, 10, max_keys=100)
    assert [c.hit("k", t) for t in (0, 1, 2, 3, 4)] == [0, 0, 3, 0, 0]
    assert [c.hit("k", t) for t in (10, 11, 12)] == [0, 0, 3]  # a new window


def test_distinct_counter_counts_items_once_and_stops_storing():
    c = DistinctCounter(3, 10, max_keys=100)
    assert [c.add("k", i, 0) for i in ("a", "a", "b", "c", "d")] == [0, 0, 0, 3, 0]
    assert c.items("k") == {"a", "b", "c"}  # the fourth is counted no more, nor stored


def test_tables_are_bounded():
    rate, distinct = RateCounter(5, 10**9, max_keys=10), DistinctCounter(5, 10**9, max_keys=10)
    table: dict = {}
    for i in range(1000):
        rate.hit(i, i)
        distinct.add(i, i, i)
        remember(table, i, i, 10)
    assert len(rate) == len(distinct) == len(table) == 10
    assert rate.evicted == distinct.evicted == 990
    rate.expire(2 * 10**9)
    assert len(rate) == 0
