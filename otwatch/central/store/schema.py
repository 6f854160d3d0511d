"""Every mapped table of the central store, imported in one place (for Alembic and tests).

A feature that adds central tables puts them in ``models_<topic>.py`` (subclassing
``models.Base``) and adds one import line here.
"""

from otwatch.central.store import (
    models,  # noqa: F401
    models_api,  # noqa: F401
    models_devices,  # noqa: F401
    models_forwarding,  # noqa: F401
    models_portal,  # noqa: F401
)
from otwatch.central.store.models import Base

__all__ = ["Base"]
