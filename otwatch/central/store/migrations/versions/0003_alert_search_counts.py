"""Alert queries at a million rows: severity rank, exact group counts, text search index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

- ``alerts.severity_rank``, a generated column (virtual on SQLite, stored on PostgreSQL),
  with an index, for sorting by severity;
- engine and site with last detection, for newest-first lists filtered by them;
- ``alert_counts`` and the triggers that keep it exact, for group-by counts;
- the substring search index (SQLite FTS5 trigram table, PostgreSQL pg_trgm GIN index);
- the per-column group-by indexes of 0002 are dropped (counts replace them).

On PostgreSQL the role needs the right to create the ``pg_trgm`` extension (trusted since
PostgreSQL 13: the database owner may), or an administrator creates it beforehand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from otwatch.central.store import derived

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEVERITY_RANK_SQL = (
    "CASE severity WHEN 'low' THEN 0 WHEN 'medium' THEN 1 WHEN 'high' THEN 2 ELSE -1 END"
)
LIST_INDEXES = {
    "ix_alerts_severity_rank_id": ["severity_rank", "id"],
    "ix_alerts_engine_last_detection_ns": ["engine", "last_detection_ns"],
    "ix_alerts_site_last_detection_ns": ["site", "last_detection_ns"],
}
GROUP_INDEXES = {
    "ix_alerts_engine_id": ["engine", "id"],
    "ix_alerts_name_id": ["name", "id"],
    "ix_alerts_site_id": ["site", "id"],
}


def upgrade() -> None:
    # SQLite adds only virtual generated columns; PostgreSQL indexes only stored ones.
    stored = True if op.get_bind().dialect.name == "postgresql" else None
    op.add_column(
        "alerts",
        sa.Column(
            "severity_rank",
            sa.SmallInteger(),
            sa.Computed(SEVERITY_RANK_SQL, persisted=stored),
            nullable=False,
        ),
    )
    for name, columns in LIST_INDEXES.items():
        op.create_index(name, "alerts", columns)
    for name in GROUP_INDEXES:
        op.drop_index(name, table_name="alerts")
    op.create_table(
        "alert_counts",
        sa.Column("sensor", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.Column("engine", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "sensor", "site", "zone", "engine", "category", "name", "status", "severity",
            name=op.f("pk_alert_counts"),
        ),
    )  # fmt: skip
    conn = op.get_bind()
    derived.install(conn)
    derived.rebuild(conn)


def downgrade() -> None:
    conn = op.get_bind()
    derived.drop(conn)
    op.drop_table("alert_counts")
    for name, columns in GROUP_INDEXES.items():
        op.create_index(name, "alerts", columns, unique=False)
    for name in LIST_INDEXES:
        op.drop_index(name, table_name="alerts")
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_column("severity_rank")
