"""The daemons' garbage-collector settings (``otwatch.gctune``)."""

from __future__ import annotations

import gc

from otwatch import gctune


def test_tuning_freezes_start_up_objects_and_collects_rarely():
    before = gc.get_threshold()
    try:
        gctune.tune_for_daemon()
        assert gc.get_freeze_count() > 10_000  # modules, schemas, mappers
        assert gc.get_threshold() == (gctune.YOUNG, *gctune.OLDER)
        # cycles are still collected
        cycle: list = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_daemon_runner_tunes_before_serving(monkeypatch):
    from otwatch.cli import mqtt_options

    calls = []
    monkeypatch.setattr(mqtt_options, "tune_for_daemon", lambda: calls.append("tuned"))

    async def main(stop):
        calls.append("served")

    mqtt_options.run_until_signal(main)
    assert calls == ["tuned", "served"]


def test_a_replay_collects_rarely_and_puts_the_thresholds_back(tmp_path, monkeypatch):
    from scapy.utils import wrpcap

    from otwatch.agent import replay as replay_module
    from otwatch.agent.store.db import open_store
    from tests.factories import udp

    seen = []
    real = replay_module._replay_file

    def spy(*args):
        seen.append(gc.get_threshold())
        return real(*args)

    monkeypatch.setattr(replay_module, "_replay_file", spy)
    capture = tmp_path / "in.pcap"
    wrpcap(str(capture), [udp("192.0.2.1", "192.0.2.2", 1000, 502)] * 3)
    before = gc.get_threshold()
    store = open_store(tmp_path / "data")
    try:
        summary = replay_module.replay([capture], store)
    finally:
        store.close()
    assert summary.packets == 3
    assert seen == [(gctune.YOUNG, *gctune.OLDER)]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_a_capture_worker_tunes_before_its_loop_runs(monkeypatch):
    from otwatch.agent import worker

    calls = []
    monkeypatch.setattr(worker, "tune_for_daemon", lambda: calls.append("tuned"))

    class Loop:
        def run(self, stopping):
            calls.append(("ran", stopping()))

    worker.serve(Loop(), lambda: True)  # type: ignore[arg-type]
    assert calls == ["tuned", ("ran", True)]
