"""Forwarding figures for ``otwatch status`` and the Prometheus metrics: per target its
queue (changes not yet examined), sent, failed, dropped and last error, from the store (the
daemon saves its counters there with each cursor move)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from otwatch.forwarding.backend import Backend
from otwatch.forwarding.repository import list_rules

__all__ = ["forwarding_families", "forwarding_rows", "forwarding_text"]


def forwarding_rows(backend: Backend) -> list[dict[str, Any]]:
    """One row per target of every rule (empty when forwarding is not set up)."""
    with backend.store.session() as session:
        rules = list_rules(session, backend)
    return [
        {
            "rule": rule["name"],
            "enabled": rule["enabled"],
            "target": target["label"],
            "queue": target.get("queue", 0),
            "sent": target["sent"],
            "failed": target["failed"],
            "dropped": target["dropped"],
            "last_error": target["last_error"],
            "last_sent": target["last_sent_at"],
        }
        for rule in rules
        for target in rule["targets"]
    ]


def forwarding_text(rows: list[dict[str, Any]]) -> list[str]:
    """Lines for ``otwatch status``."""
    if not rows:
        return ["forward   no rules"]
    lines = []
    for row in rows:
        state = "" if row["enabled"] else " (disabled)"
        line = (
            f"forward   {row['rule']}{state} → {row['target']}: {row['queue']:,} waiting, "
            f"{row['sent']:,} sent, {row['failed']:,} failed, {row['dropped']:,} dropped"
        )
        if row["last_error"]:
            line += f"; last error: {row['last_error']}"
        lines.append(line)
    return lines


def forwarding_families(gauge: Any, counter: Any, rows: list[dict[str, Any]]) -> Iterator[Any]:
    """Prometheus families (``GaugeMetricFamily``/``CounterMetricFamily`` passed in)."""
    labels = ["rule", "target"]
    queue = gauge(
        "otwatch_forwarding_queue_depth", "Changes a target has not examined yet", labels=labels
    )
    sent = counter("otwatch_forwarding_sent", "Events a target took", labels=labels)
    failed = counter("otwatch_forwarding_failed", "Failed delivery attempts", labels=labels)
    dropped = counter(
        "otwatch_forwarding_dropped",
        "Events skipped because a failing target fell too far behind",
        labels=labels,
    )
    for row in rows:
        key = [row["rule"], row["target"]]
        queue.add_metric(key, row["queue"])
        sent.add_metric(key, row["sent"])
        failed.add_metric(key, row["failed"])
        dropped.add_metric(key, row["dropped"])
    yield from (queue, sent, failed, dropped)
