"""The type gate (engines/gate.py) and the pipeline's routing by packet events."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from scapy.utils import wrpcap

from otwatch.agent.engines.arp_scan import ArpScanEngine
from otwatch.agent.engines.assets import NewAssetEngine
from otwatch.agent.engines.gate import TypeGateError, split_settings
from otwatch.agent.engines.modbus import ModbusEngine
from otwatch.agent.engines.registry import ENGINES
from otwatch.agent.pipeline import FLOW_REFRESH_NS
from otwatch.cli.main import cli
from tests.factories import SEC, T0, A, B, EngineRun, arp_request, netstore, syn, synack, tcp

__all__ = ["netstore"]
SCAN = "arp_address_scan_detected"


def arp_scan(count: int = 60):
    return [arp_request(A, f"192.0.2.{i}") for i in range(100, 100 + count)]


def test_off_by_default_network_type_is_dropped_by_the_pipeline(netstore):
    run = EngineRun.with_store(netstore, (ArpScanEngine,), all_types=False)
    run.feed(arp_scan(), SEC, start_ns=T0)
    assert run.types() == {}
    assert run.pipeline.stats.disabled == 1 and run.pipeline.stats.detections == 0


def test_enable_turns_it_on_and_disable_turns_a_default_type_off(netstore):
    run = EngineRun.with_store(
        netstore, (ArpScanEngine,), settings={"arp_scan": {"enable": [SCAN]}}, all_types=False
    )
    run.feed(arp_scan(), SEC, start_ns=T0)
    assert run.types() == {SCAN: 1}

    run = EngineRun.with_store(
        netstore, (NewAssetEngine,), settings={"assets": {"disable": ["*"]}}, all_types=False
    )
    run.feed([syn(A, B, 502)], start_ns=T0)
    assert run.types() == {} and run.pipeline.stats.disabled == 1  # the sender is a new device


def test_engines_never_see_the_gate_keys():
    settings, enabled = split_settings(
        ENGINES, {"modbus": {"enable": ["*"], "unanswered": 5}, "arp_scan": {"enable": [SCAN]}}
    )
    assert settings["modbus"] == {"unanswered": 5} and settings["arp_scan"] == {}
    assert SCAN in enabled and "illegal_modbus_operation_function_code_zero" in enabled
    default_off = split_settings(ENGINES, {})[1]
    assert SCAN not in default_off and "modbus_exception" in default_off


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"enable": ["arp_spoofing"]}, "not a type of detector 'modbus'"),
        ({"disable": "modbus_exception"}, "must be a list"),
    ],
)
def test_bad_gate_settings_are_refused(table, needle):
    with pytest.raises(TypeGateError, match=needle):
        split_settings((ModbusEngine,), {"modbus": table})


class _Spy:
    """Records which packets an engine's ``observe`` is called for."""

    def __init__(self, engine):
        self.calls = []
        original = engine.observe

        def observe(rec, flow):
            self.calls.append((rec.src_ip, rec.tcp_flags))
            return original(rec, flow)

        engine.observe = observe


def test_flow_event_once_per_direction_and_again_after_the_refresh(netstore):
    run = EngineRun.with_store(netstore, (NewAssetEngine,), learning_s=10**6)
    spy = _Spy(run.engines[0])
    run.pipeline._reset_routes()  # routes hold bound methods: rebuild them with the spy
    data = [tcp(A, B, 40000, 502, payload=b"x" * 8), tcp(B, A, 502, 40000, payload=b"y" * 8)]
    handshake = [syn(A, B, 502, 40000), synack(B, A, 502, 40000)]
    run.feed(handshake + data * 50, start_ns=T0)
    assert spy.calls == [(A, 0x02), (B, 0x12)]  # the data packets never reach the engine
    run.feed(data, start_ns=run.ts + FLOW_REFRESH_NS + SEC)
    assert len(spy.calls) == 4  # a long-lived flow is seen again after the refresh


def test_replay_takes_engine_settings_from_the_configuration(tmp_path):
    capture = tmp_path / "scan.pcap"
    wrpcap(str(capture), arp_scan())
    config = tmp_path / "otwatch.toml"
    config.write_text(f'[engines.arp_scan]\nenable = ["{SCAN}"]\n')
    runner = CliRunner()
    for name, args in (("default", []), ("enabled", ["--config", str(config)])):
        data = tmp_path / name
        result = runner.invoke(
            cli, [*args, "--data-dir", str(data), "agent", "replay", str(capture), "--format",
                  "json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        listed = runner.invoke(cli, ["--data-dir", str(data), "alerts", "list", "--format", "json"])
        names = {alert["type"] for alert in json.loads(listed.output)}
        assert (SCAN in names) is (name == "enabled"), names


def test_data_event_is_the_first_payload_each_way_and_again_after_a_syn(netstore):
    from otwatch.agent.engines.standard_port import StandardPortEngine

    run = EngineRun.with_store(netstore, (StandardPortEngine,))
    spy = _Spy(run.engines[0])
    run.pipeline._reset_routes()
    data = [tcp(A, B, 40000, 502, payload=b"x" * 8), tcp(B, A, 502, 40000, payload=b"y" * 8)]
    handshake = [syn(A, B, 502, 40000), synack(B, A, 502, 40000)]
    run.feed(handshake + data * 20, start_ns=T0)
    # the SYN, then the first payload of each direction (the SYN-ACK carries none)
    assert spy.calls == [(A, 0x02), (A, 0x18), (B, 0x18)]
    run.feed([syn(A, B, 502, 40000), *data])  # the port pair is reused
    assert spy.calls[3:] == [(A, 0x02), (A, 0x18), (B, 0x18)]
