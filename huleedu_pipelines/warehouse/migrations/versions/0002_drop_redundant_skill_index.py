"""Drop ix_skill_assessments_essay: the unique key (essay_id, skill, model_name, model_version)
already serves lookups by essay_id, and every extra index slows the nightly bulk writes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_skill_assessments_essay", table_name="skill_assessments")


def downgrade() -> None:
    op.create_index("ix_skill_assessments_essay", "skill_assessments", ["essay_id"])
