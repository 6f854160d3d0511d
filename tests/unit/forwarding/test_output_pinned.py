"""The bytes every target writes stay the same when the forwarder is made faster: alerts
(hostile values included: pipes, equals, backslashes, line breaks, control characters,
non-ASCII, an 8 KB user agent) raised through the real manager into a real SQLite store,
with status, severity and closure changes, read back by the real reader and encoded by
each target (syslog text/CEF/LEEF/JSON framed for TCP, the file target's lines, webhook
bodies one by one and batched), plus hand-made hostile events through every formatter.
Each output is compared with a digest recorded from the code before the speed work
(``tests/unit/forwarding/data/pinned_output.json``; ``python -m
tests.unit.forwarding.test_output_pinned`` prints the digests of the code as it is).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import sys
from pathlib import Path

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.alerts.ratelimit import RateLimit
from otwatch.agent.store.db import open_store
from otwatch.agent.store.forwarding import sensor_backend
from otwatch.alerts.catalog import load_catalog
from otwatch.alerts.lifecycle import Action
from otwatch.forwarding.formats import FORMATTERS
from otwatch.forwarding.rfc5424 import frame_octet_counted, syslog_message
from otwatch.forwarding.rules import RuleFilter
from otwatch.forwarding.source import GapGuard, RuleView, read_events
from otwatch.forwarding.targets.base import FileSpec, SyslogSpec, WebhookSpec
from otwatch.forwarding.targets.file import FileTarget
from otwatch.forwarding.targets.syslog import SyslogTarget
from otwatch.forwarding.targets.webhook import WebhookTarget
from tests.factories import T0
from tests.forwarding.samples import HOSTILE, LONG_UA, event, raise_alert

PINNED = Path(__file__).parent / "data" / "pinned_output.json"
FORMATS = ("text", "cef", "leef", "json")


def _manager(store, *, site: str = "plant", zone: str = "cell") -> AlertManager:
    """The real manager on a fake wall clock: change times are part of the output."""
    ticks = itertools.count(T0, 1_000_000_007)
    return AlertManager(
        store,
        load_catalog(),
        sensor_id="s1",
        site=site,
        zone=zone,
        rate_limit=RateLimit(limit=0),
        wall_ns=lambda: next(ticks),
    )


def _store_events(data_dir: Path):
    store = open_store(data_dir)
    try:
        plain, hostile = _manager(store), _manager(store, site=f"site {HOSTILE}", zone="zone=1|x")
        for n in range(12):
            raise_alert(plain, n)
        raise_alert(hostile, 100, message=f"ua {LONG_UA} {HOSTILE}")
        raise_alert(hostile, 101, message=HOSTILE, protocol="http")
        raise_alert(plain, 102, message="ü 日本 \x1b[31mred\x1b[0m", protocol="s7")
        plain.flush()
        hostile.flush()
        ids = sorted(plain.stats.created | hostile.stats.created)
        plain.apply([ids[0]], Action.SET_STATUS, actor=f"ana {HOSTILE}", value="closed")
        plain.apply([ids[1]], Action.SET_SEVERITY, actor="ana", value="high")
        plain.apply([ids[-1]], Action.SET_STATUS, actor="bo", value="active")
        plain.flush()
        backend = sensor_backend(store)
        read = []
        for detail in (True, False):  # without: what a syslog target reads
            with store.session() as session:
                result = read_events(
                    session,
                    backend,
                    RuleView(RuleFilter(), True, 0),
                    (0, 0),
                    "pinned-instance",
                    1000,
                    GapGuard(),
                    0,
                    detail,
                )
            read.append(result.events)
        return read
    finally:
        store.close()


def outputs(tmp: Path) -> dict[str, str]:
    """Digest of each target's output for the same alerts."""
    events, brief = _store_events(tmp / "store")
    assert len(events) == 18  # 15 new alerts and 3 changes
    hand = [event(kind) for kind in ("new", "status", "severity", "closed", "test")]
    hand.append(event(source_address="plc-1.example", destination_address=None, tactics=[]))
    out: dict[str, bytes] = {}
    for fmt in FORMATS:
        target = SyslogTarget(SyslogSpec(host="127.0.0.1", transport="tcp", format=fmt))
        read = brief if fmt != "json" else events
        out[f"store/syslog-{fmt}"] = b"".join(frame_octet_counted(m) for m in target.encode(read))
        out[f"hand/syslog-{fmt}"] = b"".join(frame_octet_counted(m) for m in target.encode(hand))
        out[f"hand/body-{fmt}"] = "\n".join(FORMATTERS[fmt](e) for e in hand).encode()
        out[f"hand/udp-{fmt}"] = b"\n".join(syslog_message(e, FORMATTERS[fmt](e)) for e in hand)
    for name, evs in (("store", events), ("hand", hand)):
        path = tmp / f"{name}.ndjson"
        asyncio.run(FileTarget(FileSpec(path=str(path))).send(evs))
        out[f"{name}/file"] = path.read_bytes()
        for batch in (1, 4):
            hook = WebhookTarget(WebhookSpec(url="http://127.0.0.1:9/hook", batch=batch))
            out[f"{name}/webhook-{batch}"] = b"\x00".join(hook.bodies(evs))
    return {key: hashlib.sha256(value).hexdigest() for key, value in sorted(out.items())}


def test_every_target_writes_the_pinned_bytes(tmp_path):
    expected = json.loads(PINNED.read_text())
    got = outputs(tmp_path)
    assert got.keys() == expected.keys()
    changed = [key for key in got if got[key] != expected[key]]
    assert changed == []


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        json.dump(outputs(Path(tmp)), sys.stdout, indent=1)
        print()
