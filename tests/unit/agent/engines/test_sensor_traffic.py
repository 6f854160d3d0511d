"""No Traffic Detected / Traffic Detected on Sensor Interface from packets and ticks."""

from __future__ import annotations

from otwatch.agent.engines.sensor_traffic import SensorTrafficEngine
from tests.factories import SEC, T0, A, B, feed, make_pipeline, netstore, tcp

__all__ = ["netstore"]
ENGINES = (SensorTrafficEngine,)


def test_silence_then_traffic_again(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [tcp(A, B, 50000, 502)] * 10, interface="span0")
    # traffic again; it is reported on the next tick, within a second
    feed(p, [tcp(A, B, 50000, 502)] * 3, T0 + 600 * SEC, SEC, interface="span0")
    assert got.types() == {
        "no_traffic_detected_on_sensor_interface": 1,
        "traffic_detected_on_sensor_interface": 1,
    }
    silent = got.of("no_traffic_detected_on_sensor_interface")[0]
    assert (
        silent.fields["interface"] == "span0" and silent.ts_ns == T0 + 9 * SEC // 1000 + 120 * SEC
    )
    back = got.of("traffic_detected_on_sensor_interface")[0]
    assert back.ts_ns == T0 + 600 * SEC


def test_wall_clock_ticks_notice_silence(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [tcp(A, B, 50000, 502)] * 3)
    p.tick(T0 + 100 * SEC)
    assert got.types() == {}
    p.tick(T0 + 200 * SEC)
    p.tick(T0 + 300 * SEC)
    assert got.types() == {"no_traffic_detected_on_sensor_interface": 1}
    assert got.detections[0].fields["interface"] == "default"


def test_busy_interfaces_and_new_files_are_quiet(netstore):
    p, got = make_pipeline(netstore, ENGINES)
    feed(p, [tcp(A, B, 50000, 502)] * 300, step_ns=SEC, interface="eth1")
    feed(p, [tcp(A, B, 50000, 502)] * 300, step_ns=SEC, interface="eth2")
    p.start_segment()  # the next capture file starts years later: not silence
    feed(p, [tcp(A, B, 50000, 502)] * 3, T0 + 10**6 * SEC, interface="eth1")
    assert got.types() == {}
