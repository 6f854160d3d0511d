"""Load and save the learned baseline and the learning-mode state."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.orm import Session

from otwatch.agent.engines.baseline import Baseline
from otwatch.agent.store.models import BaselineFact
from otwatch.agent.store.state import get_state, put_state

__all__ = [
    "BASELINE_VERSION",
    "LEARNING_KEY",
    "load_baseline",
    "load_learning_ns",
    "save_baseline",
    "save_learning_ns",
]

LEARNING_KEY = "learning_remaining_ns"
BASELINE_VERSION = "baseline_version"
"""Bumped when facts are imported or removed outside the agent; the pipeline reloads them."""


def load_baseline(session: Session) -> Baseline:
    rows = session.execute(select(BaselineFact.kind, BaselineFact.key)).all()
    return Baseline((kind, key) for kind, key in rows)


def save_baseline(
    session: Session, dirty: dict[tuple[str, str], tuple[int, dict[str, Any]]], origin: str
) -> int:
    """Insert newly learned facts (idempotent); returns how many were written."""
    if not dirty:
        return 0
    rows = [
        {
            "kind": kind,
            "key": key,
            "attrs": attrs,
            "first_seen_ns": ts,
            "last_seen_ns": ts,
            "origin": origin,
        }
        for (kind, key), (ts, attrs) in dirty.items()
    ]
    for start in range(0, len(rows), 5000):
        session.execute(
            insert(BaselineFact).on_conflict_do_nothing(index_elements=["kind", "key"]),
            rows[start : start + 5000],
        )
    return len(rows)


def load_learning_ns(session: Session) -> int:
    return int(get_state(session, LEARNING_KEY, 0))


def save_learning_ns(session: Session, remaining_ns: int) -> None:
    put_state(session, LEARNING_KEY, int(remaining_ns))
