"""The inventory through the real pipeline and sensor store: roles on the generated plant,
overrides that win, OUI vendors, persistence across restarts (counters add up)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from otwatch.agent.replay import replay
from otwatch.agent.store.db import open_store
from otwatch.agent.store.devices import find_device, set_overrides
from otwatch.agent.store.models_devices import DeviceRow
from otwatch.simulate.plant import PlantProfile, write_plant_capture


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    path = tmp_path_factory.mktemp("plant") / "plant.pcap"
    write_plant_capture(path, PlantProfile(learning_s=20, attack_s=20, engineering=True))
    return path


def _rows(store) -> dict[str, DeviceRow]:
    with store.session() as session:
        rows = session.scalars(select(DeviceRow)).all()
        session.expunge_all()
    return {row.key: row for row in rows}


def test_roles_on_the_generated_plant(plant, tmp_path) -> None:
    store = open_store(tmp_path / "data")
    try:
        replay([plant], store, learning_period_ns=10 * 10**9)
        rows = _rows(store)
    finally:
        store.close()
    for hmi in ("192.0.2.10", "192.0.2.11"):
        assert rows[hmi].device_type == "HMI/SCADA client", rows[hmi].type_reason
        assert rows[hmi].purdue_level == 2
    for plc in ("192.0.2.20", "192.0.2.21", "192.0.2.22"):
        assert rows[plc].device_type == "PLC" and rows[plc].purdue_level == 1
        assert rows[plc].type_reason == "serves modbus" or "s7comm" in rows[plc].type_reason
        assert rows[plc].learned
    eng = rows["192.0.2.30"]
    assert eng.device_type == "Engineering station" and "program" in eng.type_reason
    assert rows["192.0.2.66"].learned is False  # the rogue device came after learning
    plc = rows["192.0.2.20"]
    assert plc.mac == "02:00:c0:00:02:14" and plc.macs["02:00:c0:00:02:14"][0] > 0
    assert plc.packets_in > 0 and plc.packets_out > 0 and plc.bytes_in > plc.packets_in
    assert "192.0.2.10" in plc.peers and "modbus" in plc.protocols
    # both ends of every flow are counted, each once per direction
    hmi_total = sum(rows[h].packets_out + rows[h].packets_in for h in ("192.0.2.10", "192.0.2.11"))
    assert hmi_total > 0


def test_persists_across_restart_and_overrides_win(plant, tmp_path) -> None:
    data = tmp_path / "data"
    store = open_store(data)
    try:
        replay([plant], store, learning_period_ns=10 * 10**9)
        first = _rows(store)["192.0.2.20"]
        with store.session() as session:
            row = find_device(session, "02:00:c0:00:02:14")
            assert row is not None and row.key == "192.0.2.20"
            set_overrides(session, row, name="Filler PLC", device_type="RTU/outstation",
                          purdue=0, now_ns=1)  # fmt: skip
    finally:
        store.close()
    store = open_store(data)  # a restart: a new process opens the same store
    try:
        replay([plant], store)
        again = _rows(store)["192.0.2.20"]
    finally:
        store.close()
    assert again.packets_in == 2 * first.packets_in and again.bytes_out == 2 * first.bytes_out
    assert again.first_seen_ns == first.first_seen_ns
    assert (again.name, again.device_type, again.purdue_level) == (
        "Filler PLC",
        "RTU/outstation",
        0,
    )
    assert again.type_reason == "set by a user"


def test_oui_vendor_for_registered_macs() -> None:
    from otwatch.agent.inventory.vendors import oui_vendor

    assert oui_vendor("00:1b:1b:02:e6:1f") == "Siemens AG"
    assert oui_vendor("00:19:07:24:3c:ca") == "Cisco Systems, Inc"
    assert oui_vendor("08:00:06:93:cf:32") == "SIEMENS AG"
    assert oui_vendor("02:00:c0:00:02:14") is None  # locally administered
    assert oui_vendor("not a mac") is None
