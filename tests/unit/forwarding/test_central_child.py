"""Central's forwarding as a child process (``otwatch.forwarding.child``): real processes on a
real central SQLite database. The child forwards, runs at lower CPU priority, stops with
central, and stops by itself when central dies by ``kill -9``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from otwatch.central.store.db import open_central_store
from otwatch.central.store.forwarding import central_backend
from otwatch.forwarding.child import NICE, run_forwarding_child
from otwatch.forwarding.repository import add_rule, parse_rule_spec
from tests.centralapi import add_alerts, snapshot


def _central(tmp_path: Path, out: Path) -> str:
    url = f"sqlite:///{tmp_path / 'central.db'}"
    store = open_central_store(url)
    try:
        with store.session() as s:
            spec = parse_rule_spec({"name": "all", "targets": [{"kind": "file", "path": str(out)}]})
            add_rule(s, central_backend(store), spec, "tester")
        add_alerts(store, "s1", [snapshot(n) for n in range(1, 6)])
    finally:
        store.close()
    return url


def _forwarding_children(pid: int) -> list[int]:
    """This process's children running ``otwatch … forwarding run`` (a test worker may have
    other children, a broker say)."""
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if b"forwarding" in argv and b"run" in argv:
                out.append(int(child))
    return out


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _wait(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_child_forwards_at_lower_priority_and_stops_with_central(tmp_path):
    out = tmp_path / "alerts.ndjson"
    url = _central(tmp_path, out)
    seen: dict[str, int] = {}

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_forwarding_child(url, stop))
        while len(_lines(out)) < 5:
            await asyncio.sleep(0.05)
            assert not task.done()
        (child,) = _forwarding_children(os.getpid())
        seen["pid"], seen["nice"] = child, _nice(child)
        stop.set()
        await asyncio.wait_for(task, 20)

    asyncio.run(main())
    docs = _lines(out)
    assert [d["otwatch"]["alert"]["id"] for d in docs] == [f"{n}-s1" for n in range(1, 6)]
    assert seen["nice"] == min(19, _nice(os.getpid()) + NICE)
    assert not Path(f"/proc/{seen['pid']}").exists() or "Z" in _state(seen["pid"])


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_child_stops_by_itself_when_central_is_killed(tmp_path):
    out = tmp_path / "alerts.ndjson"
    url = _central(tmp_path, out)
    forward = f"{sys.executable} -m otwatch.cli forwarding run --poll 0.05 --parent-pid $$"
    # the shell stands for central: it starts the forwarder as its child, then is killed
    parent = subprocess.Popen(
        ["sh", "-c", f"{forward} & echo $!; wait"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OTWATCH_CENTRAL_DB": url},
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        _wait(lambda: len(_lines(out)) == 5)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        _wait(lambda: not Path(f"/proc/{child}").exists() or _state(child) == "Z", 20)
    finally:
        if Path(f"/proc/{child}").exists() and _state(child) != "Z":
            os.kill(child, signal.SIGKILL)
