"""Alembic environment for the central store (see otwatch.dbcommon.run_alembic_env)."""

from otwatch.central.store.schema import Base
from otwatch.dbcommon import run_alembic_env

run_alembic_env(Base.metadata)
