"""monitoring_measurements: the history of `prediction_monitoring`, one row per measurement per
run of a (day, shard) partition, so a rerun adds rows instead of overwriting the last run's.
Existing homes get the table, empty.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_measurements",
        sa.Column("measurement_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("shard", sa.Integer, nullable=False),
        sa.Column("shards", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.UniqueConstraint("run_id", "metric", "subject", name="uq_monitoring_measurements"),
    )
    op.create_index(
        "ix_monitoring_measurements_partition",
        "monitoring_measurements",
        ["partition_date", "shard"],
    )


def downgrade() -> None:
    op.drop_index("ix_monitoring_measurements_partition", "monitoring_measurements")
    op.drop_table("monitoring_measurements")
