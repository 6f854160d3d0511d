"""Builds what each caller of the alert domain needs, one way for all of them.

The live daemon and replay detect: they get an ``AlertManager`` (its caches load every open
alert and rule once). The CLI, maintenance and the sync daemon only change stored alerts: they
get a ``Triage``, which loads nothing up front.
"""

from __future__ import annotations

from otwatch.agent.alerts.manager import AlertManager
from otwatch.agent.alerts.ratelimit import DEFAULT_RATE_LIMIT, RateLimit
from otwatch.agent.alerts.triage import Triage
from otwatch.agent.sensor import SensorIdentity, resolve_identity
from otwatch.agent.store.db import Store
from otwatch.alerts.catalog import Catalog, load_catalog

__all__ = ["alert_manager", "triage"]


def alert_manager(
    store: Store,
    identity: SensorIdentity | None = None,
    *,
    rate_limit: RateLimit | None = None,
    catalog: Catalog | None = None,
) -> AlertManager:
    """The detection path for ``identity`` (default: the identity stored in ``store``)."""
    if identity is None:
        with store.session() as session:
            identity = resolve_identity(session)
    return AlertManager(
        store,
        catalog or load_catalog(),
        sensor_id=identity.sensor_id,
        site=identity.site,
        zone=identity.zone,
        rate_limit=rate_limit or DEFAULT_RATE_LIMIT,
    )


def triage(store: Store, *, catalog: Catalog | None = None) -> Triage:
    """Triage of the alerts in ``store``, without the detection path's caches."""
    return Triage(store, catalog or load_catalog())
