"""The sensor store as a forwarding ``Backend`` (``otwatch.forwarding``)."""

from __future__ import annotations

from typing import Any

from otwatch.agent.store.models import Alert, AuditEvent
from otwatch.agent.store.models_forwarding import ForwardingRule, ForwardingTarget
from otwatch.agent.store.state import get_state, put_state
from otwatch.forwarding.backend import Backend

__all__ = ["sensor_backend"]


def sensor_backend(store: Any) -> Backend:
    return Backend(
        "sensor", store, Alert, AuditEvent, ForwardingRule, ForwardingTarget, get_state, put_state
    )
