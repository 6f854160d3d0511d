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
