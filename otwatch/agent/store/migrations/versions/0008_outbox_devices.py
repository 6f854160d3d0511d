"""outbox rows for devices (inventory sync to central)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07

``outbox.device_id``: the device of a ``device`` row (kind ``device``; ``alert_id`` is null),
indexed with ``published_ns`` so that the flush finds a device's unpublished row at once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("device_id", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_outbox_device_id_published_ns"), ["device_id", "published_ns"]
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_device_id_published_ns"))
        batch_op.drop_column("device_id")
