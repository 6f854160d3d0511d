"""Central owns each sensor's placement (site and zone)

Revision ID: 0006
Revises: 0007 (main's head when this branch last merged it; the lead rechains)
Create Date: 2026-12-07

``sensors.placed_by`` says who set the sensor's site and zone: ``sensor`` (pinned from its
first birth), ``admin`` (``otwatch central sensor set``), or null (not yet placed). A later
claim in a sensor's birth no longer moves it (``otwatch.central.placement``). Sensors that
already had a birth keep their placement, pinned.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sensors") as batch:
        batch.add_column(sa.Column("placed_by", sa.String(16), nullable=True))
    op.execute("UPDATE sensors SET placed_by = 'sensor' WHERE epoch IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("sensors") as batch:
        batch.drop_column("placed_by")
