"""Evidence cut under an alert storm, for ``bench/replay.py`` (which prints the figures).

Two cases, each beside a same-run baseline: the frame-by-frame cut the one-pass cut replaced
(``tests/unit/agent/capture/evidence_oracle.py``), timed on a sample of the same alerts in
the same data directory, one alert per pass as it ran, in CPU time.

- **(a) no baseline**: ``otwatch agent replay --ring`` of a Modbus polling capture with 75
  clients and no learning period: every client is a new asset and every function code new
  (about 150 alerts, half the packets detections); its evidence is cut at the end of the
  replay (``evidence_s``, ``evidence_cpu_s`` of the summary).
- **(b) 1,000 alerts over a 1 GB ring**: a ring of ~1 GB of Modbus polling (200 clients,
  built once and cached), 1,000 alerts raised at evenly spread moments of it, half on a
  client and the server (every packet of their window is theirs), half on a client alone;
  all cut by ``extract_due`` at once.

Run as a child: ``python bench/evidence_storm.py cut DATA_DIR old|walk|new N`` cuts N alerts
of DATA_DIR (their evidence reset first) and prints ``{"alerts", "wall_s", "cpu_s", "rss"}``:
``old`` the frame-by-frame cut, ``walk`` today's one-pass cut as it was before the segment
index (every record header walked, every file written), ``new`` the cut as it is.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import delete, select  # noqa: E402

from otwatch.agent.capture.config import EvidenceConfig, RingConfig, evidence_directory  # noqa: E402
from otwatch.agent.capture.evidence import Evidence  # noqa: E402
from otwatch.agent.replay import peak_rss_bytes  # noqa: E402
from otwatch.agent.store.db import open_store  # noqa: E402
from otwatch.agent.store.models import Alert  # noqa: E402
from otwatch.agent.store.models_pcap import PcapEvidence, PcapSegment  # noqa: E402

GB = 1_000_000_000
RING_PACKETS = 11_800_000
"""Modbus polling frames of ~90 bytes: about 1 GB of ring."""
_PAIR_TYPES = (
    "modbus_address_range_violation",
    "function_code_raised_unauthorized_exception",
    "database_login_failed",
)
_HOST_TYPES = ("firmware_version_changed", "field_device_discovered_unexpectedly")


def _sample(ids: list[int], n: int) -> list[int]:
    if n >= len(ids):
        return ids
    step = len(ids) / n
    return [ids[int(i * step)] for i in range(n)]


def cut_child(data_dir: Path, algorithm: str, n: int) -> dict:
    """Reset the evidence of ``n`` alerts (spread over the ids) and cut them."""
    store = open_store(data_dir, migrate_schema=False)
    try:
        config = EvidenceConfig(directory=evidence_directory(data_dir))
        if algorithm == "old":
            from tests.unit.agent.capture.evidence_oracle import OldEvidence

            ev: Evidence = OldEvidence(store, config)
        else:
            ev = Evidence(store, config)
            if algorithm == "walk":
                ev.use_index = ev.link_twins = False
        with store.session() as session:
            ids = _sample(list(session.scalars(select(Alert.id).order_by(Alert.id))), n)
            session.execute(delete(PcapEvidence).where(PcapEvidence.alert_id.in_(ids)))
        for alert_id in ids:
            (config.directory / f"alert-{alert_id}.pcap").unlink(missing_ok=True)
        ev.schedule(ids)
        wall, cpu = time.perf_counter(), time.process_time()
        if algorithm == "old":
            ev.extract_many(ids)
            ev.enforce_budget()
        else:
            ev.extract_due(force=True)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return {"alerts": len(ids), "wall_s": wall, "cpu_s": cpu, "rss": peak_rss_bytes()}
    finally:
        store.close()


def build_ring(cache: Path, packets: int, write_capture) -> Path:
    """A data directory holding a ring of ``packets`` frames (built once into ``cache``;
    the capture it is written from is deleted afterwards)."""
    from otwatch.agent.capture.pcapfile import open_capture
    from otwatch.agent.capture.ring import RingWriter

    home = cache / f"ring_{packets}"
    if (home / "complete").exists():
        _index_missing(home)
        return home
    shutil.rmtree(home, ignore_errors=True)
    capture = cache / f"ring_{packets}_source.pcap"
    write_capture(str(capture), packets)
    store = open_store(home)
    config = RingConfig(directory=home / "pcap" / "ring", max_bytes=None, max_percent=None)
    ring = RingWriter(store, config, "bench")
    with open_capture(capture) as cap:
        for i, (chunk, raw) in enumerate(cap.chunks(1024)):
            if raw is not None:
                ring.write_raw(chunk, raw, chunk[0][2], True)
            else:
                ring.write_batch(chunk, chunk[0][2], True)
            if not i % 256:
                ring.tick()
    ring.close()
    store.close()
    capture.unlink()
    _index_missing(home)
    (home / "complete").touch()
    return home


def _index_missing(home: Path) -> None:
    """Give every segment the index its writer leaves (as written), as at the first evidence
    pass over it: the pass turns it into the form as read and puts that in place, so a
    copy of the written form is kept beside the ring and put back before each run."""
    from otwatch.agent.capture.ring_index import index_path, index_segment

    written = home / "index-as-written"
    written.mkdir(exist_ok=True)
    for segment in sorted((home / "pcap" / "ring").glob("*.pcap")):
        kept = written / index_path(segment).name
        if not kept.exists() or kept.stat().st_mtime_ns < segment.stat().st_mtime_ns:
            index_segment(segment, 1, True)
            shutil.copyfile(index_path(segment), kept)
        shutil.copyfile(kept, index_path(segment))


def alerts_over(ring_home: Path, work: Path, count: int = 1000) -> Path:
    """A fresh data directory over the cached ring (the ring linked, the store copied)
    with ``count`` alerts at evenly spread moments: half on a client and the server, half
    on a client alone."""
    from gen_capture import SERVER_IP

    from otwatch.agent.alerts.manager import AlertManager
    from otwatch.agent.engines.detection import DetectionFactory
    from otwatch.alerts.catalog import load_catalog

    data_dir = work / "data"
    (data_dir / "pcap").mkdir(parents=True)
    shutil.copy2(ring_home / "otwatch.db", data_dir / "otwatch.db")
    os.symlink(ring_home / "pcap" / "ring", data_dir / "pcap" / "ring")
    store = open_store(data_dir)
    try:
        with store.session() as session:
            first = min(session.scalars(select(PcapSegment.first_ns)))
            last = max(session.scalars(select(PcapSegment.last_ns)))
        catalog = load_catalog()
        factory = DetectionFactory(catalog)
        manager = AlertManager(store, catalog, sensor_id="bench")
        span = last - first
        types = [*((t, True) for t in _PAIR_TYPES), *((t, False) for t in _HOST_TYPES)]
        for i in range(count):  # every (type, client) once: 1,000 distinct alerts
            ts = first + span * (2 * i + 1) // (2 * count)
            client = f"192.0.2.{11 + i % 200}"
            type_id, pair = types[(i // 200) % len(types)]
            if pair:
                det = factory.make(
                    type_id, ts, f"{client} to {SERVER_IP}",
                    source_address=client, destination_address=SERVER_IP, protocol="modbus",
                )  # fmt: skip
            else:
                det = factory.make(
                    type_id, ts, f"{client} alone", source_address=client, protocol="modbus"
                )
            manager.observe(det)
            if not i % 200:
                manager.flush()
        manager.flush()
    finally:
        store.close()
    return data_dir


def run_cut(data_dir: Path, algorithm: str, n: int) -> dict:
    from replay import run_child

    out, _usage = run_child([sys.executable, __file__, "cut", str(data_dir), algorithm, str(n)])
    return json.loads(out)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "cut":
        print(json.dumps(cut_child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]))))
    else:
        sys.exit(__doc__)
