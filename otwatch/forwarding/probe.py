"""``forwarding test``: send one clearly marked test alert through each of a rule's targets
and report success or the exact error per target."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from otwatch.forwarding.events import make_test_event
from otwatch.forwarding.targets.base import DeliveryError, target_label
from otwatch.forwarding.targets.factory import build_target
from otwatch.timeutil import now_ns

__all__ = ["ProbeResult", "probe_targets"]


@dataclass(frozen=True)
class ProbeResult:
    target: str
    ok: bool
    error: str | None = None


async def _probe(spec: Any, sensor: str) -> ProbeResult:
    try:
        target = build_target(spec)
    except DeliveryError as exc:
        return ProbeResult(target_label(spec), False, str(exc))
    try:
        await target.send([make_test_event(sensor, now_ns())])
        return ProbeResult(target.label, True)
    except DeliveryError as exc:
        return ProbeResult(target.label, False, str(exc))
    finally:
        await target.close()


def probe_targets(specs: list[Any], sensor: str) -> list[ProbeResult]:
    async def run() -> list[ProbeResult]:
        return [await _probe(spec, sensor) for spec in specs]

    return asyncio.run(run())
