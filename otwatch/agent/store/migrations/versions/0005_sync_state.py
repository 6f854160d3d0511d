"""sync state (sync daemon)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sync_applied_commands",
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("received_ns", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.Boolean(), nullable=False),
        sa.Column("reply", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("command_id", name=op.f("pk_sync_applied_commands")),
    )
    with op.batch_alter_table("sync_applied_commands", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sync_applied_commands_received_ns"), ["received_ns"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_applied_commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sync_applied_commands_received_ns"))
    op.drop_table("sync_applied_commands")
