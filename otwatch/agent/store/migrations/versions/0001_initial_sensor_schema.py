"""initial sensor schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alert_rules',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('type_id', sa.String(length=80), nullable=False),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('alert_id', sa.BigInteger(), nullable=True),
    sa.Column('key_fields', sa.JSON(), nullable=False),
    sa.Column('created_ns', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules')),
    sa.UniqueConstraint('kind', 'dedup_key', name=op.f('uq_alert_rules_kind_dedup_key'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('type_id', sa.String(length=80), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('engine', sa.String(length=32), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('close_reason', sa.String(length=16), nullable=True),
    sa.Column('dedup_key', sa.String(length=64), nullable=False),
    sa.Column('source_address', sa.String(length=64), nullable=True),
    sa.Column('destination_address', sa.String(length=64), nullable=True),
    sa.Column('source_mac', sa.String(length=17), nullable=True),
    sa.Column('destination_mac', sa.String(length=17), nullable=True),
    sa.Column('protocol', sa.String(length=32), nullable=True),
    sa.Column('first_detection_ns', sa.BigInteger(), nullable=False),
    sa.Column('last_detection_ns', sa.BigInteger(), nullable=False),
    sa.Column('last_activity_ns', sa.BigInteger(), nullable=False),
    sa.Column('detections', sa.BigInteger(), nullable=False),
    sa.Column('sensor', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('zone', sa.String(length=64), nullable=False),
    sa.Column('tactics', sa.JSON(), nullable=False),
    sa.Column('learnable', sa.Boolean(), nullable=False),
    sa.Column('mutable', sa.Boolean(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('remediation', sa.JSON(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('status_hlc', sa.BigInteger(), nullable=False),
    sa.Column('severity_hlc', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_dedup_key_status'), ['dedup_key', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_last_detection_ns'), ['last_detection_ns'], unique=False)
        batch_op.create_index(batch_op.f('ix_alerts_status_severity'), ['status', 'severity'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('alert_id', sa.BigInteger(), nullable=True),
    sa.Column('ts_ns', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_alert_id'), ['alert_id'], unique=False)

    op.create_table('baseline',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('attrs', sa.JSON(), nullable=False),
    sa.Column('first_seen_ns', sa.BigInteger(), nullable=False),
    sa.Column('last_seen_ns', sa.BigInteger(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_baseline')),
    sa.UniqueConstraint('kind', 'key', name=op.f('uq_baseline_kind_key'))
    )
    op.create_table('outbox',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('alert_id', sa.BigInteger(), nullable=True),
    sa.Column('created_ns', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('published_ns', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_outbox_event_id'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_alert_id_kind_published_ns'), ['alert_id', 'kind', 'published_ns'], unique=False)

    op.create_table('sensor_state',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sensor_state'))
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only")
    op.drop_table('sensor_state')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_alert_id_kind_published_ns'))

    op.drop_table('outbox')
    op.drop_table('baseline')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_alert_id'))

    op.drop_table('audit_log')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_status_severity'))
        batch_op.drop_index(batch_op.f('ix_alerts_last_detection_ns'))
        batch_op.drop_index(batch_op.f('ix_alerts_dedup_key_status'))

    op.drop_table('alerts')
    op.drop_table('alert_rules')
