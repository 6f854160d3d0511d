"""Shared pieces of the OT engines: policy facts, enabled types, packet fields, counters."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from otwatch.agent.decode.flows import Flow
from otwatch.agent.decode.headers import decode
from otwatch.agent.engines.bacnet import BacnetEngine
from otwatch.agent.engines.base import EngineContext
from otwatch.agent.engines.baseline import Baseline, LearningClock
from otwatch.agent.engines.cip import CipEngine
from otwatch.agent.engines.detection import DetectionFactory
from otwatch.agent.engines.dnp3 import Dnp3Engine
from otwatch.agent.engines.gate import emitted_types
from otwatch.agent.engines.iec104 import Iec104Engine
from otwatch.agent.engines.modbus import ModbusEngine
from otwatch.agent.engines.ot_support import (
    MalformedCounter,
    Policy,
    flow_state,
    packet_fields,
)
from otwatch.agent.engines.profinet import ProfinetEngine
from otwatch.agent.engines.s7 import S7Engine
from otwatch.alerts.catalog import load_catalog
from tests.factories import CLIENT, MIN, SERVER, EngineRun, mac, to_client, to_server, udp


def context(learning_ns: int = 0) -> EngineContext:
    return EngineContext(DetectionFactory(load_catalog()), Baseline(), LearningClock(learning_ns))


def test_policy_learns_while_learning_and_reports_afterwards() -> None:
    ctx = context(MIN)
    policy = Policy(ctx, "dnp3_fc")
    assert not policy.violates("a>b:13", 1)
    assert "a>b:13" in ctx.baseline.kind("dnp3_fc")
    assert ("dnp3_fc", "a>b:13") in ctx.baseline.take_dirty()
    ctx.learning.remaining_ns = 0
    assert not policy.violates("a>b:13", 2)
    assert policy.violates("a>b:14", 3)
    assert "a>b:14" not in ctx.baseline.kind("dnp3_fc")


def test_emitted_types_follow_the_catalog_defaults() -> None:
    types = frozenset({"modbus_exception", "illegal_modbus_operation_function_code_zero"})
    assert emitted_types(types) == {"modbus_exception"}
    assert emitted_types(types, enable=("illegal_modbus_operation_function_code_zero",)) == types
    assert emitted_types(types, enable=("*",), disable=("modbus_exception",)) == {
        "illegal_modbus_operation_function_code_zero"
    }
    assert not load_catalog()["illegal_modbus_operation_function_code_zero"].enabled_by_default


def test_packet_fields_and_reverse() -> None:
    data = bytes(to_server(502, b"x"))
    rec = decode(1, len(data), 1, data)
    fields = packet_fields(rec, "modbus")
    assert fields == {
        "source_address": CLIENT,
        "destination_address": SERVER,
        "source_mac": mac(CLIENT),
        "destination_mac": mac(SERVER),
        "protocol": "modbus",
    }
    swapped = packet_fields(rec, "modbus", reverse=True)
    assert swapped["source_address"] == SERVER and swapped["source_mac"] == mac(SERVER)


def test_malformed_counter_reaches_its_threshold_once_per_window() -> None:
    data = bytes(to_server(502, b"x"))
    counter = MalformedCounter(threshold=2, window_s=600)
    hits = [counter.hit(decode(i * 10**9, len(data), 1, data), "modbus") for i in range(3)]
    assert hits == [False, True, False]


def test_flow_state_is_created_once() -> None:
    flow = Flow(CLIENT, 40000, SERVER, 502, 6, "modbus", 0)
    first = flow_state(flow, "x", list)
    first.append(1)
    assert flow_state(flow, "x", list) == [1]
    assert flow_state(None, "x", list) == []


# -- every OT engine survives garbage ----------------------------------------------------------


ENGINE_PORTS = [
    (ModbusEngine, 502), (Dnp3Engine, 20000), (S7Engine, 102), (CipEngine, 44818),
    (Iec104Engine, 2404),
]  # fmt: skip


def garbage_through_every_engine(payloads: list[bytes]) -> None:
    for engine, port in ENGINE_PORTS:
        run = EngineRun(engine, settings={engine.name: {"enable": ("*",)}})
        run.feed([to_server(port, p) for p in payloads] + [to_client(port, p) for p in payloads])
        run.learn([to_server(port, p) for p in payloads])
    bacnet = EngineRun(BacnetEngine, settings={"bacnet": {"enable": ("*",)}})
    bacnet.feed([udp(CLIENT, SERVER, 47808, 47808, p) for p in payloads])
    bacnet.feed([udp(CLIENT, SERVER, 47808, 47808, b"\x81\x0a" + len(p).to_bytes(2, "big") + p)
                 for p in payloads])  # fmt: skip
    profinet = EngineRun(ProfinetEngine, settings={"profinet": {"enable": ("*",)}})
    profinet.feed([Ether(type=0x8892) / Raw(b"\xfe\xfd" + p) for p in payloads])


@settings(max_examples=15, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=80), min_size=1, max_size=4))
def test_ot_engines_never_raise_on_garbage(payloads: list[bytes]) -> None:
    garbage_through_every_engine(payloads)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=10))
def test_ot_engines_never_raise_on_garbage_soak(payloads: list[bytes]) -> None:
    garbage_through_every_engine(payloads)
