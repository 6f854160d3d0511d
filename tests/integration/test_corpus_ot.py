"""The corpus events the MANIFEST names raise the matching alerts, end to end: capture files
replayed through ``otwatch.agent.replay.replay`` (the live pipeline) into a real store.

Without a learning period every traffic pattern is new, so the policy types fire too; the
IEC 104 case learns on one capture and then replays another. Types the spec marks off by
default are checked through a pipeline whose settings turn them on.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from sqlalchemy import select

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.pipeline import Pipeline
from otwatch.agent.replay import replay
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert
from otwatch.alerts.catalog import load_catalog


def alerts_by_type(store) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = defaultdict(list)
    with store.session() as session:
        for alert in session.scalars(select(Alert)):
            session.expunge(alert)
            out[alert.type_id].append(alert)
    return out


@pytest.fixture
def replayed(pcaps, tmp_path):
    """``replayed(*names, learning_s=None)`` → alerts by type after replaying the files."""
    stores = []

    def run(*names: str, learning_s: float | None = None) -> dict[str, list[Alert]]:
        store = open_store(tmp_path / f"data{len(stores)}")
        stores.append(store)
        learning = None if learning_s is None else int(learning_s * 1e9)
        replay([pcaps / name for name in names], store, learning_period_ns=learning)
        return alerts_by_type(store)

    yield run
    for store in stores:
        store.close()


def only(alerts: dict[str, list[Alert]], type_id: str) -> Alert:
    assert type_id in alerts, f"{type_id} not raised; got {sorted(alerts)}"
    assert len(alerts[type_id]) >= 1
    return alerts[type_id][0]


def test_dnp3_cold_restart(replayed) -> None:
    alerts = replayed("dnp3_cold_restart.pcap")
    alert = only(alerts, "outstation_restarted")
    assert alert.source_address == "192.168.60.130"  # the outstation
    assert alert.protocol == "dnp3"
    assert "Cold Restart (function 13)" in alert.message
    assert alert.tactics == ["Inhibit Response Function"] and alert.remediation
    assert "function_code_not_supported_by_outstation" in alerts  # the outstation said IIN2.0


def test_dnp3_test_data_restarts_and_stop(replayed) -> None:
    alerts = replayed("dnp3_test_data.pcap")
    assert only(alerts, "outstation_restarted").detections >= 2
    assert only(alerts, "controller_reset").detections == 2  # WARM_RESTART x2
    stops = alerts["controller_stop"]
    assert sum(a.detections for a in stops) == 4  # STOP_APPLICATION x4
    assert all("Stop Application (function 18)" in a.message for a in stops)


def test_dnp3_malformed(replayed) -> None:
    alert = only(replayed("dnp3_malformed.pcap"), "illegal_dnp3_operation")
    assert alert.detections >= 150
    assert (alert.source_address, alert.destination_address) == ("192.168.0.1", "192.168.0.2")


def test_s7_stop_and_upload(replayed) -> None:
    alerts = replayed("s7comm_stop_start_upload.pcap")
    stop = only(alerts, "an_s7_stop_plc_command_was_sent")
    assert (stop.source_address, stop.destination_address) == ("134.217.61.131", "134.217.61.211")
    assert "PLC Stop (function 0x29" in stop.message
    upload = only(alerts, "unauthorized_plc_program_upload")
    assert upload.detections == 13
    assert "plc_operating_mode_changed" in alerts  # PI-Service P_PROGRAM (PLC start)
    assert "unauthorized_plc_configuration_write" in alerts  # _MODU, _GARB, set clock


def test_s7_download_without_learning(replayed) -> None:
    alert = only(replayed("s7comm_download_ob1.pcap"), "unauthorized_plc_programming")
    assert "block OB1" in alert.message
    assert alert.detections == 5  # request download, 2 download blocks, download ended, _INSE


def test_s7_plc_password(replayed) -> None:
    alert = only(replayed("s7comm_plc_password.pcap"),
                 "unauthorized_siemens_s7_execution_of_user_defined_function")  # fmt: skip
    assert "Security / PLC password" in alert.message


@pytest.mark.parametrize("name", ["enip_cip_stop.pcap", "enip_remote_mode_change.pcap"])
def test_cip_controller_stop(replayed, name: str) -> None:
    alert = only(replayed(name), "controller_stop")
    assert "CIP Stop (0x07) on class 0x8E" in alert.message
    assert alert.protocol == "cip"


def test_cip_firmware_update_and_reset(replayed) -> None:
    alerts = replayed("enip_firmware_update.pcap")
    update = only(alerts, "firmware_update")
    assert update.detections >= 5243
    assert (update.source_address, update.destination_address) == (
        "192.168.10.105", "192.168.10.120",
    )  # fmt: skip
    assert "Reset (0x05) on class 0x01 (Identity)" in only(alerts, "controller_reset").message
    assert "ethernet_ip_cip_service_request_failed" in alerts


def test_bacnet_reinitialize_device(replayed) -> None:
    alerts = replayed("bacnet_stack_services.pcap")
    resets = alerts["controller_reset"]
    assert sum(a.detections for a in resets) == 3
    assert all("ReinitializeDevice (coldstart" in a.message for a in resets)
    assert "password-failure" in only(alerts, "bacnet_operation_failed").message
    assert only(alerts, "illegal_bacnet_message").detections == 4


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("modbus_writes_diag.pcap", {"modbus_exception", "usage_of_a_reserved_function_code",
                                     "controller_reset", "plc_operating_mode_changed"}),
        ("modbus_fc_sweep.pcap", {"modbus_exception", "usage_of_a_reserved_function_code",
                                  "unpermitted_modbus_schneider_electric_extension"}),
        ("modbus_fuzz.pcap", {"modbus_exception", "usage_of_a_reserved_function_code"}),
    ],
)  # fmt: skip
def test_modbus_protocol_violations(replayed, name: str, expected: set[str]) -> None:
    assert expected <= set(replayed(name))


def test_modbus_sweep_exceptions(replayed) -> None:
    alert = only(replayed("modbus_fc_sweep.pcap"), "modbus_exception")
    assert alert.source_address == "166.161.16.230" and alert.detections == 130


def test_profinet_dcp_set_ip(replayed) -> None:
    # The default-on PROFINET type; the configuration change itself (off by default) is
    # checked below with the type enabled.
    alert = only(replayed("profinet_dcp_set_ip.pcap"), "unauthorized_profinet_frame_type")
    assert alert.protocol == "profinet" and alert.source_mac == "00:0c:29:ba:09:ea"


def test_iec104_commands_after_learning_on_another_capture(replayed) -> None:
    # iec104_misc spans 824 s of traffic: learn on it, then replay iec104_diverse
    alerts = replayed("iec104_misc.pcap", "iec104_diverse.pcap", learning_s=830)
    unpermitted = alerts["unpermitted_usage_of_asdu_types"]
    assert unpermitted and {a.source_address for a in unpermitted} == {"10.0.0.10"}
    assert "not seen during learning" in unpermitted[0].message


def test_iec104_learned_capture_replayed_again_is_quiet(replayed) -> None:
    alerts = replayed("iec104_misc.pcap", "iec104_misc.pcap", learning_s=830)
    assert "unpermitted_usage_of_asdu_types" not in alerts


# -- types that are off by default -----------------------------------------------------------

ENABLE_ALL = {name: {"enable": ("*",)} for name in ("modbus", "dnp3", "profinet", "iec104")}


def pipeline_alerts(pcaps, tmp_path, *names: str) -> dict[str, list[Alert]]:
    store = open_store(tmp_path / "enabled")
    try:
        manager = AlertManager(store, load_catalog(), sensor_id="corpus")
        pipeline = Pipeline(manager, learning_period_ns=0, settings=ENABLE_ALL)
        for name in names:
            pipeline.start_segment()
            with open_capture(pcaps / name) as capture:
                for frame in capture:
                    pipeline.process(*frame)
        pipeline.flush()
        return alerts_by_type(store)
    finally:
        store.close()


def test_off_by_default_types_when_enabled(pcaps, tmp_path) -> None:
    alerts = pipeline_alerts(pcaps, tmp_path, "modbus_fc_sweep.pcap", "modbus_writes_diag.pcap",
                             "profinet_dcp_set_ip.pcap", "dnp3_malformed.pcap")  # fmt: skip
    assert "function code 0" in only(alerts, "illegal_modbus_operation_function_code_zero").message
    assert "protocol identifier 16" in only(alerts, "illegal_protocol_version").message
    change = only(alerts, "change_of_device_configuration")
    assert "192.168.0.10" in change.message and change.destination_mac == "08:00:06:93:cf:32"
    assert "excessive_malformed_packets_in_a_single_session" in alerts
    assert "slave_device_received_illegal_function_code" in alerts  # sweep: exception 1
