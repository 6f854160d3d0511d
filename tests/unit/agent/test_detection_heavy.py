"""The detection-heavy path raises exactly the alerts it raised before it was made faster.

Generated captures replayed with no learned baseline, so half the Modbus packets are
detections. The digests cover every alert's identity, counts, times, message and fields;
they were taken from the code before the detection path's caches (issue 18).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from otwatch.agent.replay import replay
from otwatch.agent.store.db import open_store
from otwatch.agent.store.models import Alert

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from gen_capture import mixed_plant, modbus_polling

_COLUMNS = (
    "type_id", "dedup_key", "source_address", "destination_address", "source_mac",
    "destination_mac", "protocol", "first_detection_ns", "last_detection_ns", "detections",
    "message", "fields", "severity",
)  # fmt: skip


def _alerts_digest(store) -> tuple[int, str]:
    with store.session() as session:
        rows = sorted(
            json.dumps([getattr(a, c) for c in _COLUMNS], sort_keys=True, default=str)
            for a in session.scalars(select(Alert))
        )
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()


@pytest.mark.parametrize(
    ("name", "write", "detections", "alerts", "digest"),
    [
        (
            "storm",
            lambda p: modbus_polling(p, 20_000, clients=75, seed=3),
            10_076,
            151,
            "5bc8b8415f1e19dfbd08da9d04a65432edfe4aab53a6d1fae3171e53c3247707",
        ),
        (
            "mixed",
            lambda p: mixed_plant(p, 20_000, seed=3),
            11_227,
            104,
            "50993c78e5e1b4051dbe2d9ad6654b3417c3db31ec75d3921142c15ec246af54",
        ),
    ],
)
def test_no_baseline_replay_raises_the_same_alerts(
    tmp_path, name, write, detections, alerts, digest
):
    capture = tmp_path / f"{name}.pcap"
    write(str(capture))
    store = open_store(tmp_path / "data")
    try:
        summary = replay([capture], store)
        assert (summary.detections, summary.alerts_new) == (detections, alerts)
        assert _alerts_digest(store) == (alerts, digest)
    finally:
        store.close()
