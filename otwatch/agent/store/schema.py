"""Every mapped table of the sensor store, imported in one place.

Alembic's ``env.py`` and the schema tests import this module so that ``Base.metadata`` holds
all tables. A feature that adds tables puts its classes in its own ``models_<topic>.py``
(subclassing ``models.Base``) and adds one import line here.
"""

from otwatch.agent.store import (  # noqa: F401 - imported for their tables
    models,
    models_forwarding,
    models_pcap,
    models_rules,
    models_sync,
)
from otwatch.agent.store.models import Base

__all__ = ["Base"]
