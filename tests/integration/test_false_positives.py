"""After learning on normal traffic, more normal traffic of the same plant raises nothing
(issue 4 #6): generated plant profiles, and real captures split into learn/test halves."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import func, select

from otwatch.agent.capture.pcapfile import open_capture
from otwatch.agent.capture.pcapwrite import pcap_record, write_pcap_header
from otwatch.agent.replay import replay
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert
from otwatch.simulate.plant import PlantProfile, write_plant_capture

PROFILES = [
    PlantProfile(seed=1, hmis=1, plcs=2, learning_s=120, attack_s=0),
    PlantProfile(seed=2, hmis=3, plcs=4, functions=(3,), learning_s=120, attack_s=0),
    PlantProfile(
        seed=3,
        hmis=2,
        plcs=1,
        functions=(1, 2, 4),
        write_every=10,
        learning_s=120,
        attack_s=0,
        poll_interval_s=0.2,
    ),
]


def alert_counts(store) -> dict[str, int]:
    with store.session() as s:
        rows = s.execute(select(Alert.type_id, func.count()).group_by(Alert.type_id)).all()
    return {type_id: count for type_id, count in rows}


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: f"seed{p.seed}")
def test_generated_plant_normal_traffic_raises_nothing_after_learning(tmp_path, profile):
    learn, more = tmp_path / "learn.pcap", tmp_path / "more.pcap"
    write_plant_capture(learn, profile, with_attack=False)
    later = dataclasses.replace(profile, seed=profile.seed + 100)
    write_plant_capture(more, later, with_attack=False)
    store = open_store(tmp_path / "data")
    replay([learn], store, learning_period_ns=int(profile.learning_s * 1e9))
    assert alert_counts(store) == {}
    summary = replay([more], store, learning_period_ns=0)
    assert summary.packets > 500
    assert alert_counts(store) == {}
    # and the same plant under attack is not silent: the check above can fail
    attacked = tmp_path / "attacked.pcap"
    write_plant_capture(
        attacked,
        PlantProfile(
            seed=profile.seed + 200,
            hmis=profile.hmis,
            plcs=profile.plcs,
            learning_s=10,
            attack_s=60,
        ),
    )
    replay([attacked], store, learning_period_ns=0)
    assert "port_scan_detected" in alert_counts(store)


def split_halves(source: Path, directory: Path) -> tuple[Path, Path, int]:
    with open_capture(source) as capture:
        frames = list(capture)
        linktype = capture.linktype
    half = len(frames) // 2
    paths = []
    for name, part in (("first", frames[:half]), ("second", frames[half:])):
        path = directory / f"{name}.pcap"
        with path.open("wb") as out:
            write_pcap_header(out, linktype)
            for ts_ns, wire_len, _linktype, data in part:
                out.write(pcap_record(ts_ns, wire_len, data))
        paths.append(path)
    return paths[0], paths[1], frames[half - 1][0] - frames[0][0]


@pytest.mark.parametrize(
    "name", ["modbus_polling_writes.pcap", "c37118_pmu_tcp.pcap", "hart_ip.pcapng"]
)
def test_real_capture_second_half_is_quiet_after_learning_the_first(tmp_path, pcaps, name):
    first, second, span_ns = split_halves(pcaps / name, tmp_path)
    store = open_store(tmp_path / "data")
    replay([first], store, learning_period_ns=span_ns + 1)
    replay([second], store, learning_period_ns=0)
    assert alert_counts(store) == {}
