"""Indexes the night's selection reads through: essays by submission time, comparisons by
creation time, batch and essay, and the output rows by model version (so "essays lacking a row
from this champion" is an index-only anti-join). Existing homes get them built from their rows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_essays_submitted_at", "essays", ["submitted_at"]),
    ("ix_cj_comparison_pairs_created_at", "cj_comparison_pairs", ["created_at"]),
    ("ix_cj_comparison_pairs_batch_id", "cj_comparison_pairs", ["batch_id"]),
    ("ix_cj_comparison_pairs_essay_a_id", "cj_comparison_pairs", ["essay_a_id"]),
    ("ix_cj_comparison_pairs_essay_b_id", "cj_comparison_pairs", ["essay_b_id"]),
    (
        "ix_skill_assessments_model",
        "skill_assessments",
        ["model_name", "model_version", "skill", "essay_id"],
    ),
    (
        "ix_essay_grade_predictions_versions",
        "essay_grade_predictions",
        ["grade_model_version", "cefr_model_version", "ielts_band_model_version", "essay_id"],
    ),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
