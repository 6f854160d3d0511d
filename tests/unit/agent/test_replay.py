"""Offline replay through the real pipeline into a real store (issue 2 #5)."""

from __future__ import annotations

import csv
import json

from click.testing import CliRunner
from sqlalchemy import func, select

from otwatch.agent.replay import replay
from otwatch.agent.store.models import Alert, BaselineFact
from otwatch.cli.main import cli
from otwatch.timeutil import parse_duration_ns
from tests.fuzz.frames import rss_mib


def test_every_packet_of_the_corpus_is_counted(store, pcaps):
    files = sorted(p for p in pcaps.iterdir() if p.suffix in (".pcap", ".pcapng"))
    manifest = {
        row["file"]: int(row["packets"])
        for row in csv.DictReader((pcaps / "MANIFEST.tsv").open(), delimiter="\t")
    }
    summary = replay(files, store, sensor_id="corpus")
    assert summary.packets == sum(manifest[f.name] for f in files)
    assert summary.files == len(files) and not summary.problems
    assert summary.alerts_new > 0


def test_learned_baseline_persists_between_replays(store, pcaps):
    polling = pcaps / "modbus_polling_writes.pcap"
    first = replay([polling], store, learning_period_ns=parse_duration_ns("10m"))
    assert first.alerts_new == 0  # learning: policy alerts are silent
    assert first.learning_remaining_s > 0
    with store.session() as s:
        facts = dict(
            s.execute(select(BaselineFact.kind, func.count()).group_by(BaselineFact.kind)).all()
        )
    assert facts["device"] == 6 and facts["modbus_fc"] >= 5
    # stop learning and replay the same normal traffic: nothing new
    second = replay([polling], store, learning_period_ns=0)
    assert second.alerts_new == 0
    # different traffic after learning does alert
    third = replay([pcaps / "modbus_writes_diag.pcap"], store)
    assert third.alerts_new > 0
    with store.session() as s:
        names = set(s.scalars(select(Alert.name)))
    assert {"New Asset Detected", "Unpermitted Usage of Modbus Function Code"} <= names


def test_second_replay_of_same_traffic_updates_instead_of_raising(store, pcaps):
    capture = pcaps / "modbus_writes_diag.pcap"
    first = replay([capture], store)
    second = replay([capture], store)
    assert first.alerts_new > 0
    assert second.alerts_new == 0 and second.alerts_updated == first.alerts_new


def test_cli_json_summary_keys(tmp_path, pcaps):
    result = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(tmp_path),
            "agent",
            "replay",
            str(pcaps / "nmap_host_discovery.pcap"),
            "--sensor-id",
            "plant-1",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {"packets", "bytes", "alerts_new", "alerts_updated", "seconds"} <= set(summary)
    assert summary["packets"] == 547
    # this process's own peak (VmHWM): at least what it has resident now
    assert summary["peak_rss_bytes"] >= rss_mib() * 2**20 * 0.9
    listed = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path), "alerts", "list", "--format", "json"]
    )
    assert {a["sensor"] for a in json.loads(listed.output)} == {"plant-1"}


def test_malformed_frames_are_counted_not_fatal(store, pcaps):
    malformed = pcaps / "malformed"
    summary = replay([malformed / "eth_caplen8.pcap", malformed / "ipv4_bogus_ihl.pcap"], store)
    assert summary.packets == 2 and summary.malformed == 2
