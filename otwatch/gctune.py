"""Garbage-collector settings for the long-running daemons (sync, central).

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

Reference cycles are still collected, just in bigger, rarer batches.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG", "tune_for_daemon"]

YOUNG = 50_000
"""Allocations between young-generation collections (CPython's default: 700)."""
OLDER = (20, 20)
"""Collections of the generation below before a middle / old one (default: 10, 10)."""


def tune_for_daemon() -> None:
    """Freeze what start-up built and collect rarely (call once, when serving starts)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, *OLDER)
