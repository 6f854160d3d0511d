"""The forwarding tables' DDL, used by the revision of each Alembic tree (sensor ``0006``,
central ``0007``) so both stores get identical tables from one description."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

__all__ = ["create_tables", "drop_tables"]


def create_tables() -> None:
    op.create_table(
        "forwarding_rules",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("updates", sa.Boolean(), nullable=False),
        sa.Column("start_alert_id", sa.BigInteger(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forwarding_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_forwarding_rules_name")),
    )
    op.create_table(
        "forwarding_targets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("change_cursor", sa.BigInteger(), nullable=False),
        sa.Column("alert_cursor", sa.BigInteger(), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.String(length=512), nullable=True),
        sa.Column("last_error_ns", sa.BigInteger(), nullable=True),
        sa.Column("last_sent_ns", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forwarding_targets")),
    )
    with op.batch_alter_table("forwarding_targets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_forwarding_targets_rule_id"), ["rule_id"], unique=False
        )


def drop_tables() -> None:
    with op.batch_alter_table("forwarding_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forwarding_targets_rule_id"))
    op.drop_table("forwarding_targets")
    op.drop_table("forwarding_rules")
