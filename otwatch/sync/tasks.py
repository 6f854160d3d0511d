"""``spawn``: start a background task and keep a reference to it until it ends.

The event loop holds tasks only weakly, so a task nobody references can vanish mid-flight;
ruff bans ``asyncio.create_task`` in this project for that reason. Exceptions of spawned
tasks are logged, never silently lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["spawn"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_RUNNING: set[asyncio.Task[Any]] = set()


def _done(task: asyncio.Task[Any]) -> None:
    _RUNNING.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed: %r", task.get_name(), task.exception())


def spawn(coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
    task = asyncio.get_running_loop().create_task(coro, name=name)
    _RUNNING.add(task)
    task.add_done_callback(_done)
    return task
