"""initial central schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sensor", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("type_id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("engine", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("close_reason", sa.String(length=16), nullable=True),
        sa.Column("dedup_key", sa.String(length=64), nullable=False),
        sa.Column("source_address", sa.String(length=64), nullable=True),
        sa.Column("destination_address", sa.String(length=64), nullable=True),
        sa.Column("source_mac", sa.String(length=17), nullable=True),
        sa.Column("destination_mac", sa.String(length=17), nullable=True),
        sa.Column("protocol", sa.String(length=32), nullable=True),
        sa.Column("first_detection_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_detection_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_activity_ns", sa.BigInteger(), nullable=False),
        sa.Column("detections", sa.BigInteger(), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("tactics", sa.JSON(), nullable=False),
        sa.Column("learnable", sa.Boolean(), nullable=False),
        sa.Column("mutable", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("remediation", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("status_hlc", sa.BigInteger(), nullable=False),
        sa.Column("status_origin", sa.String(length=16), nullable=False),
        sa.Column("severity_hlc", sa.BigInteger(), nullable=False),
        sa.Column("severity_origin", sa.String(length=16), nullable=False),
        sa.Column("received_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("sensor", "alert_id", name=op.f("uq_alerts_sensor_alert_id")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alerts_last_detection_ns"), ["last_detection_ns"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_alerts_status_severity"), ["status", "severity"], unique=False
        )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("sensor", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_log_event_id")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_log_sensor_alert_id"), ["sensor", "alert_id"], unique=False
        )

    op.create_table(
        "central_state",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_central_state")),
    )
    op.create_table(
        "commands",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sensor", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("value", sa.String(length=64), nullable=True),
        sa.Column("hlc", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("issued_ns", sa.BigInteger(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("acked_ns", sa.BigInteger(), nullable=True),
        sa.Column("sent_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_commands")),
    )
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_commands_sensor_status"), ["sensor", "status"], unique=False
        )

    op.create_table(
        "sensors",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("first_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ns", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("health", sa.JSON(), nullable=False),
        sa.Column("epoch", sa.String(length=36), nullable=True),
        sa.Column("events_hw", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sensors")),
    )


def downgrade() -> None:
    op.drop_table("sensors")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commands_sensor_status"))

    op.drop_table("commands")
    op.drop_table("central_state")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_sensor_alert_id"))

    op.drop_table("audit_log")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_status_severity"))
        batch_op.drop_index(batch_op.f("ix_alerts_last_detection_ns"))

    op.drop_table("alerts")
