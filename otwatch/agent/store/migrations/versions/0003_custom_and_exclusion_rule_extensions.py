"""custom and exclusion rule extensions (detection)

Custom alert rules and the events they record (spec section 5), and the remaining exclusion
rule conditions: engines, sensors, MAC addresses, traffic direction and a maintenance ticket.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('custom_rules',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('protocol', sa.String(length=32), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('destinations', sa.JSON(), nullable=False),
    sa.Column('conditions', sa.JSON(), nullable=False),
    sa.Column('days', sa.JSON(), nullable=False),
    sa.Column('time_from', sa.String(length=5), nullable=True),
    sa.Column('time_to', sa.String(length=5), nullable=True),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('created_ns', sa.BigInteger(), nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custom_rules')),
    sa.UniqueConstraint('name', name=op.f('uq_custom_rules_name'))
    )
    op.create_table('custom_rule_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rule_id', sa.BigInteger(), nullable=True),
    sa.Column('rule_name', sa.String(length=128), nullable=False),
    sa.Column('ts_ns', sa.BigInteger(), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('source_address', sa.String(length=64), nullable=True),
    sa.Column('destination_address', sa.String(length=64), nullable=True),
    sa.Column('protocol', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custom_rule_events'))
    )
    with op.batch_alter_table('custom_rule_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_custom_rule_events_rule_id'), ['rule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_custom_rule_events_ts_ns'), ['ts_ns'], unique=False)

    with op.batch_alter_table('exclusion_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('engines', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('sensors', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('macs', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(
            sa.Column('direction', sa.String(length=16), nullable=False, server_default='any')
        )
        batch_op.add_column(sa.Column('ticket_id', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('exclusion_rules', schema=None) as batch_op:
        batch_op.drop_column('ticket_id')
        batch_op.drop_column('direction')
        batch_op.drop_column('macs')
        batch_op.drop_column('sensors')
        batch_op.drop_column('engines')
    with op.batch_alter_table('custom_rule_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_custom_rule_events_ts_ns'))
        batch_op.drop_index(batch_op.f('ix_custom_rule_events_rule_id'))
    op.drop_table('custom_rule_events')
    op.drop_table('custom_rules')
