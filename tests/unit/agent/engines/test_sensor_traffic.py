"""No Traffic Detected / Traffic Detected on Sensor Interface from packets and ticks."""

from __future__ import annotations

from otwatch.agent.engines.sensor_traffic import SensorTrafficEngine
from tests.factories import SEC, T0, A, B, EngineRun, netstore, tcp

__all__ = ["netstore"]
ENGINES = (SensorTrafficEngine,)


def test_silence_then_traffic_again(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([tcp(A, B, 50000, 502)] * 10, start_ns=T0, interface="span0")
    # traffic again; it is reported on the next tick, within a second
    run.feed([tcp(A, B, 50000, 502)] * 3, SEC, start_ns=T0 + 600 * SEC, interface="span0")
    assert run.types() == {
        "no_traffic_detected_on_sensor_interface": 1,
        "traffic_detected_on_sensor_interface": 1,
    }
    silent = run.of("no_traffic_detected_on_sensor_interface")[0]
    assert (
        silent.fields["interface"] == "span0" and silent.ts_ns == T0 + 9 * SEC // 1000 + 120 * SEC
    )
    back = run.of("traffic_detected_on_sensor_interface")[0]
    assert back.ts_ns == T0 + 600 * SEC


def test_wall_clock_ticks_notice_silence(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([tcp(A, B, 50000, 502)] * 3, start_ns=T0)
    run.pipeline.tick(T0 + 100 * SEC)
    assert run.types() == {}
    run.pipeline.tick(T0 + 200 * SEC)
    run.pipeline.tick(T0 + 300 * SEC)
    assert run.types() == {"no_traffic_detected_on_sensor_interface": 1}
    assert run.detections[0].fields["interface"] == "default"


def test_busy_interfaces_and_new_files_are_quiet(netstore):
    run = EngineRun.with_store(netstore, ENGINES)
    run.feed([tcp(A, B, 50000, 502)] * 300, SEC, start_ns=T0, interface="eth1")
    run.feed([tcp(A, B, 50000, 502)] * 300, SEC, start_ns=T0, interface="eth2")
    run.pipeline.start_segment()  # the next capture file starts years later: not silence
    run.feed([tcp(A, B, 50000, 502)] * 3, start_ns=T0 + 10**6 * SEC, interface="eth1")
    assert run.types() == {}
