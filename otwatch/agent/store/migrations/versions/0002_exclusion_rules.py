"""exclusion rules (spec section 5: planned noise dropped before de-duplication)

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


def upgrade() -> None:
    op.create_table('exclusion_rules',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('alert_types', sa.JSON(), nullable=False),
    sa.Column('subnets', sa.JSON(), nullable=False),
    sa.Column('start_ns', sa.BigInteger(), nullable=True),
    sa.Column('end_ns', sa.BigInteger(), nullable=True),
    sa.Column('created_ns', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exclusion_rules')),
    sa.UniqueConstraint('name', name=op.f('uq_exclusion_rules_name'))
    )


def downgrade() -> None:
    op.drop_table("exclusion_rules")
