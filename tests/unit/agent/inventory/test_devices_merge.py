"""Merging device batches into the store: counters add up and nothing collides when two
processes (workers) flush the same new device at the same time."""

from __future__ import annotations

import threading

from sqlalchemy import select

from otwatch.agent.inventory.table import DeviceTable
from otwatch.agent.store.db import open_store
from otwatch.agent.store.devices import save_devices
from otwatch.agent.store.models_devices import DeviceRow

ROUNDS, KEYS = 20, 50


def _batch(worker: int, round_: int) -> list[dict]:
    table = DeviceTable()
    for k in range(KEYS):
        dev = table.device(f"192.0.2.{k}", f"02:00:00:00:00:{k:02x}", 1_000 + round_)
        table.add_service(dev, f"client:w{worker}")
        table.count(dev.key, 1, 10, 2, 20)
    return table.take_dirty()


def test_two_writers_flushing_the_same_devices(tmp_path) -> None:
    open_store(tmp_path / "data").close()  # migrate once
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        store = open_store(tmp_path / "data")
        try:
            for round_ in range(ROUNDS):
                with store.session() as session:
                    save_devices(session, _batch(worker, round_), (), round_)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    store = open_store(tmp_path / "data")
    try:
        with store.session() as session:
            rows = session.scalars(select(DeviceRow)).all()
            assert len(rows) == KEYS
            for row in rows:
                assert (row.packets_out, row.bytes_in) == (2 * ROUNDS, 2 * ROUNDS * 20)
                assert set(row.services) == {"client:w1", "client:w2"}
                assert row.device_type == "IT host"  # no OT protocol: speaks IT only
    finally:
        store.close()
