"""API tokens, PCAP requests, alert unification; indexes for the API's queries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ALERT_INDEXES = {
    "ix_alerts_unify": [
        "type_id",
        "zone",
        "source_address",
        "destination_address",
        "first_detection_ns",
    ],
    "ix_alerts_first_detection_ns": ["first_detection_ns"],
    "ix_alerts_sensor_last_detection_ns_id": ["sensor", "last_detection_ns", "id"],
    "ix_alerts_severity_last_detection_ns_id": ["severity", "last_detection_ns", "id"],
    "ix_alerts_engine_id": ["engine", "id"],
    "ix_alerts_name_id": ["name", "id"],
    "ix_alerts_site_id": ["site", "id"],
    "ix_alerts_source_address": ["source_address"],
    "ix_alerts_destination_address": ["destination_address"],
}


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", PK, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("revoked_ns", sa.BigInteger(), nullable=True),
        sa.Column("last_used_ns", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_api_tokens_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_table(
        "pcap_requests",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("sensor", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("command_id", sa.String(length=36), nullable=True),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_ns", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=512), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("done_ns", sa.BigInteger(), nullable=True),
        sa.Column("expires_ns", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_pcap_requests")),
    )
    with op.batch_alter_table("pcap_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pcap_requests_sensor_alert_id"), ["sensor", "alert_id"], unique=False
        )
    op.create_table(
        "alert_members",
        sa.Column("alert_pk", PK, autoincrement=False, nullable=False),
        sa.Column("primary_pk", sa.BigInteger(), nullable=False),
        sa.Column("sensor", sa.String(length=64), nullable=False),
        sa.Column("unified_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("alert_pk", name=op.f("pk_alert_members")),
    )
    with op.batch_alter_table("alert_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_members_primary_pk"), ["primary_pk"], unique=False
        )
    for name, columns in ALERT_INDEXES.items():
        op.create_index(name, "alerts", columns, unique=False)


def downgrade() -> None:
    for name in ALERT_INDEXES:
        op.drop_index(name, table_name="alerts")
    op.drop_table("alert_members")
    op.drop_table("pcap_requests")
    op.drop_table("api_tokens")
