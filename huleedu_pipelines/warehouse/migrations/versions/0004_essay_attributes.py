"""essay_attributes: optional subgroups of an essay (e.g. gender, school) for fairness
analysis, one value per essay and name. Existing homes get the table, empty.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "essay_attributes",
        sa.Column("essay_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("essay_id", "name", name="pk_essay_attributes"),
    )


def downgrade() -> None:
    op.drop_table("essay_attributes")
