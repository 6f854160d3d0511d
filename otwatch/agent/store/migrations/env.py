"""Alembic environment for the sensor store (see otwatch.dbcommon.run_alembic_env)."""

from otwatch.agent.store.schema import Base
from otwatch.dbcommon import run_alembic_env

run_alembic_env(Base.metadata)
