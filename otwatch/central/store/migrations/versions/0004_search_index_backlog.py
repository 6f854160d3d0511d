"""SQLite: the alert search index is filled behind ingest, in bulk

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

Revision 0003's row triggers indexed every new alert's text inside the ingest transaction.
They are replaced by ``alerts_search_pending`` and its triggers; central moves pending
alerts into the index in bulk and searches match them by scanning until then
(``otwatch.central.store.search_backlog``). PostgreSQL: nothing changes.
"""

from collections.abc import Sequence

from alembic import op

from otwatch.central.store import search_backlog

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    search_backlog.install(op.get_bind())


def downgrade() -> None:
    search_backlog.drop(op.get_bind())
