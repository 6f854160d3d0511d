"""pcap ring index and evidence (capture)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pcap_segments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('path', sa.String(length=512), nullable=False),
    sa.Column('writer', sa.String(length=32), nullable=False),
    sa.Column('owner_pid', sa.Integer(), nullable=False),
    sa.Column('linktype', sa.Integer(), nullable=False),
    sa.Column('nanosecond', sa.Boolean(), nullable=False),
    sa.Column('first_ns', sa.BigInteger(), nullable=True),
    sa.Column('last_ns', sa.BigInteger(), nullable=True),
    sa.Column('packets', sa.BigInteger(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('created_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pcap_segments')),
    sa.UniqueConstraint('path', name=op.f('uq_pcap_segments_path'))
    )
    with op.batch_alter_table('pcap_segments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pcap_segments_closed_first_ns'), ['closed', 'first_ns'], unique=False)
        batch_op.create_index(batch_op.f('ix_pcap_segments_first_ns'), ['first_ns'], unique=False)
        batch_op.create_index(batch_op.f('ix_pcap_segments_last_ns'), ['last_ns'], unique=False)

    op.create_table('pcap_evidence',
    sa.Column('alert_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('path', sa.String(length=512), nullable=True),
    sa.Column('hosts', sa.JSON(), nullable=False),
    sa.Column('window_start_ns', sa.BigInteger(), nullable=False),
    sa.Column('window_end_ns', sa.BigInteger(), nullable=False),
    sa.Column('covered_until_ns', sa.BigInteger(), nullable=True),
    sa.Column('packets', sa.BigInteger(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('alert_id', name=op.f('pk_pcap_evidence'))
    )
    with op.batch_alter_table('pcap_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pcap_evidence_status_window_end_ns'), ['status', 'window_end_ns'], unique=False)
        batch_op.create_index(batch_op.f('ix_pcap_evidence_updated_ns'), ['updated_ns'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('pcap_evidence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pcap_evidence_updated_ns'))
        batch_op.drop_index(batch_op.f('ix_pcap_evidence_status_window_end_ns'))

    op.drop_table('pcap_evidence')
    with op.batch_alter_table('pcap_segments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pcap_segments_last_ns'))
        batch_op.drop_index(batch_op.f('ix_pcap_segments_first_ns'))
        batch_op.drop_index(batch_op.f('ix_pcap_segments_closed_first_ns'))

    op.drop_table('pcap_segments')
