"""second_ratings: an independent second human rating of an essay's grade, band or a skill
(`<label>_rater2` columns in CSV imports), kept apart from the label tables so it never enters
a training label; validation reports compare human–human with human–machine agreement on it.
Existing homes get the table, empty.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "second_ratings",
        sa.Column("essay_id", sa.String(128), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("value", sa.String(16), nullable=False),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("essay_id", "label", name="pk_second_ratings"),
    )


def downgrade() -> None:
    op.drop_table("second_ratings")
