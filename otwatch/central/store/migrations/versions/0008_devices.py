"""The device inventory of every sensor (issue 16)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-07

``central_devices``: one row per sensor device (``models_devices.CentralDevice``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "central_devices",
        sa.Column("id", PK, nullable=False),
        sa.Column("sensor", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("ip_hex", sa.String(length=32), nullable=True),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("vlan", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("vendor", sa.String(length=255), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=True),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("device_type", sa.String(length=32), nullable=False),
        sa.Column("purdue_level", sa.Integer(), nullable=True),
        sa.Column("type_reason", sa.String(length=255), nullable=False),
        sa.Column("protocols", sa.JSON(), nullable=False),
        sa.Column("peers", sa.Integer(), nullable=False),
        sa.Column("learned", sa.Boolean(), nullable=False),
        sa.Column("first_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("packets_in", sa.BigInteger(), nullable=False),
        sa.Column("packets_out", sa.BigInteger(), nullable=False),
        sa.Column("bytes_in", sa.BigInteger(), nullable=False),
        sa.Column("bytes_out", sa.BigInteger(), nullable=False),
        sa.Column("name_override", sa.String(length=255), nullable=True),
        sa.Column("type_override", sa.String(length=32), nullable=True),
        sa.Column("purdue_override", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("central_override", sa.JSON(), nullable=True),
        sa.Column("received_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_central_devices")),
        sa.UniqueConstraint("sensor", "key", name=op.f("uq_central_devices_sensor_key")),
    )
    op.create_index(op.f("ix_central_devices_sensor_ip"), "central_devices", ["sensor", "ip"])
    op.create_index(
        op.f("ix_central_devices_sensor_device_id"), "central_devices", ["sensor", "device_id"]
    )
    op.create_index(op.f("ix_central_devices_ip_hex"), "central_devices", ["ip_hex"])
    op.create_index(op.f("ix_central_devices_last_seen_ns"), "central_devices", ["last_seen_ns"])
    op.create_index(op.f("ix_central_devices_vendor"), "central_devices", ["vendor"])
    op.create_index(op.f("ix_central_devices_device_type"), "central_devices", ["device_type"])


def downgrade() -> None:
    op.drop_table("central_devices")
