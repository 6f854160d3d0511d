"""Per-field last-writer-wins merge of an alert, the rule both ends follow.

Status (with its close reason) and severity each carry the hybrid logical clock of their last
change and where it was made. The later clock wins; on a tie central wins over the sensor
(the sensor's ``AlertManager.apply`` lets a central stamp equal to its own apply, which is the
same rule); on a tie of both, a fixed rank of the values decides, so every replica picks the
same winner whatever order the changes arrive in. Detection counters only grow (max/min), and
detections never change status.

The SQL form of the same rule is in ``otwatch.central.store.alerts``; a property test checks
that the two agree.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ORIGIN_RANK",
    "REASON_RANK",
    "SEVERITY_RANK",
    "STATUS_RANK",
    "merge_alert",
    "severity_key",
    "status_key",
    "status_value_rank",
]

ORIGIN_RANK = {"sensor": 0, "central": 1}
STATUS_RANK: dict[str | None, int] = {"new": 0, "active": 1, "closed": 2}
REASON_RANK: dict[str | None, int] = {None: 0, "manual": 1, "auto": 2, "muted": 3, "learned": 4}
SEVERITY_RANK: dict[str | None, int] = {"low": 0, "medium": 1, "high": 2}


def status_value_rank(status: str, close_reason: str | None) -> int:
    return STATUS_RANK.get(status, -1) * 8 + REASON_RANK.get(close_reason, 7)


def status_key(row: dict[str, Any]) -> tuple[int, int, int]:
    return (
        int(row["status_hlc"]),
        ORIGIN_RANK.get(row.get("status_origin", "sensor"), 0),
        status_value_rank(row["status"], row.get("close_reason")),
    )


def severity_key(row: dict[str, Any]) -> tuple[int, int, int]:
    return (
        int(row["severity_hlc"]),
        ORIGIN_RANK.get(row.get("severity_origin", "sensor"), 0),
        SEVERITY_RANK.get(row["severity"], -1),
    )


def merge_alert(current: dict[str, Any] | None, incoming: dict[str, Any]) -> dict[str, Any]:
    """The merged row; ``current`` is not modified. Descriptive fields keep the first copy."""
    if current is None:
        return dict(incoming)
    out = dict(current)
    out["detections"] = max(current["detections"], incoming["detections"])
    out["first_detection_ns"] = min(current["first_detection_ns"], incoming["first_detection_ns"])
    out["last_detection_ns"] = max(current["last_detection_ns"], incoming["last_detection_ns"])
    out["last_activity_ns"] = max(current["last_activity_ns"], incoming["last_activity_ns"])
    if status_key(incoming) > status_key(current):
        for name in ("status", "close_reason", "status_hlc", "status_origin"):
            out[name] = incoming.get(name, "sensor" if name == "status_origin" else None)
    if severity_key(incoming) > severity_key(current):
        for name in ("severity", "severity_hlc", "severity_origin"):
            out[name] = incoming.get(name, "sensor" if name == "severity_origin" else None)
    return out
