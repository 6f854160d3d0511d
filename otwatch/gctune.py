"""Garbage-collector settings for the long-running daemons (sync, central, capture workers)
and for a replay's packet loop.

Each MQTT message of events becomes thousands of short-lived container objects (parsed
JSON, pydantic models, row dicts). With CPython's default thresholds (700, 10, 10) that
starts a young-generation collection every few hundred of them, and the older collections
walk everything the process imported (SQLAlchemy, pydantic, FastAPI: hundreds of thousands
of objects) again and again: validating 1,000-event batches in a process holding such
objects cost about three times what it cost with the collector off. So, once start-up is
done:

- ``gc.freeze()`` moves every object alive then (modules, compiled schemas, mappers) out of
  the collector's sight for good;
- the young generation is collected every ``YOUNG`` allocations instead of 700: message
  garbage is freed by reference counting anyway, the collector is only for cycles.

Reference cycles are still collected, just in bigger, rarer batches. The packet path is the
same story on a smaller scale: each frame leaves tuples and bytes behind that reference
counting frees, and the default thresholds walk the younger generations every 700 of them
(1.5–2.5% of a detection-heavy replay's CPU, ``bench/replay.py``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["YOUNG", "collect_rarely", "tune_for_daemon"]

YOUNG = 50_000
"""Allocations between young-generation collections (CPython's default: 700)."""
OLDER = (20, 20)
"""Collections of the generation below before a middle / old one (default: 10, 10)."""


def tune_for_daemon() -> None:
    """Freeze what start-up built and collect rarely (call once, when serving starts)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, *OLDER)


@contextlib.contextmanager
def collect_rarely() -> Iterator[None]:
    """The daemons' thresholds for a block of work in a process that goes on afterwards (a
    replay run from the CLI or from a test): nothing is frozen, the old thresholds return."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG, *OLDER)
    try:
        yield
    finally:
        gc.set_threshold(*before)
