"""device inventory

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("vlan", sa.Integer(), nullable=True),
        sa.Column("first_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("packets_in", sa.BigInteger(), nullable=False),
        sa.Column("packets_out", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("macs", sa.JSON(), nullable=False),
        sa.Column("names", sa.JSON(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("peers", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("device_type", sa.String(length=32), nullable=False),
        sa.Column("purdue_level", sa.Integer(), nullable=True),
        sa.Column("type_reason", sa.String(length=255), nullable=False),
        sa.Column("protocols", sa.JSON(), nullable=False),
        sa.Column("learned", sa.Boolean(), nullable=False),
        sa.Column("name_override", sa.String(length=255), nullable=True),
        sa.Column("type_override", sa.String(length=32), nullable=True),
        sa.Column("purdue_override", sa.Integer(), nullable=True),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("key", name=op.f("uq_devices_key")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_device_type"), ["device_type"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_ip"), ["ip"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_last_seen_ns"), ["last_seen_ns"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_mac"), ["mac"], unique=False)
        batch_op.create_index(batch_op.f("ix_devices_vendor"), ["vendor"], unique=False)


def downgrade() -> None:
    op.drop_table("devices")
