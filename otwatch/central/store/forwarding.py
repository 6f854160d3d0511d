"""Central's store as a forwarding ``Backend`` (``otwatch.forwarding``)."""

from __future__ import annotations

from typing import Any

from otwatch.central.store.models import Alert, AuditEvent
from otwatch.central.store.models_forwarding import ForwardingRule, ForwardingTarget
from otwatch.central.store.sensors import get_state, put_state
from otwatch.forwarding.backend import Backend

__all__ = ["central_backend"]


def central_backend(store: Any) -> Backend:
    return Backend(
        "central",
        store,
        Alert,
        AuditEvent,
        ForwardingRule,
        ForwardingTarget,
        get_state,
        put_state,
    )
