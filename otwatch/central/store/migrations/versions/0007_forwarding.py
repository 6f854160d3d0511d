"""alert forwarding rules and per-target delivery cursors

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-07

The same tables on the sensor and on central (``otwatch.forwarding.migration``).
"""

from collections.abc import Sequence

from otwatch.forwarding.migration import create_tables, drop_tables

revision: str = "0007"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_tables()


def downgrade() -> None:
    drop_tables()
