"""Initial warehouse: platform input tables, scoring outputs, promotions audit, quarantine.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _id(name: str, **kwargs) -> sa.Column:
    return sa.Column(name, sa.String(128), **kwargs)


def upgrade() -> None:
    op.create_table(
        "essays",
        _id("essay_id", primary_key=True),
        _id("student_id", nullable=True),
        _id("prompt_id", nullable=True),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("language", sa.String(16), nullable=True),
        sa.Column("submitted_at", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=True),
    )
    op.create_table(
        "prompts",
        _id("prompt_id", primary_key=True),
        sa.Column("title", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "teacher_grades",
        _id("essay_id", nullable=False),
        sa.Column("grade", sa.String(8), nullable=True),
        _id("teacher_id", nullable=False),
        sa.Column("graded_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("essay_id", "teacher_id", name="pk_teacher_grades"),
    )
    op.create_table(
        "ielts_scores",
        _id("essay_id", primary_key=True),
        sa.Column("band", sa.Float, nullable=True),
        sa.Column("scored_at", TZ, nullable=True),
    )
    op.create_table(
        "skill_ratings",
        _id("essay_id", nullable=False),
        sa.Column("skill", sa.String(64), nullable=False),
        sa.Column("rating", sa.Float, nullable=True),
        _id("rater_id", nullable=False),
        sa.Column("rated_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("essay_id", "skill", "rater_id", name="pk_skill_ratings"),
    )
    op.create_table(
        "cj_processed_essays",
        _id("batch_id", nullable=False),
        _id("essay_id", nullable=False),
        sa.Column("current_bt_score", sa.Float, nullable=True),
        sa.Column("bt_se", sa.Float, nullable=True),
        sa.Column("rank", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("batch_id", "essay_id", name="pk_cj_processed_essays"),
    )
    op.create_table(
        "cj_comparison_pairs",
        _id("comparison_id", primary_key=True),
        _id("batch_id", nullable=False),
        _id("essay_a_id", nullable=False),
        _id("essay_b_id", nullable=False),
        _id("winner_essay_id", nullable=True),
        sa.Column("created_at", TZ, nullable=True),
    )
    op.create_table(
        "skill_assessments",
        _id("student_id", nullable=True),
        _id("essay_id", nullable=False),
        sa.Column("skill", sa.String(64), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("top_features", sa.JSON, nullable=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("model_alias", sa.String(32), nullable=False),
        sa.Column("feature_hash", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("scored_at", TZ, nullable=False),
        sa.UniqueConstraint(
            "essay_id", "skill", "model_name", "model_version", name="uq_skill_assessments"
        ),
    )
    op.create_table(
        "essay_grade_predictions",
        _id("essay_id", nullable=False),
        sa.Column("model_alias", sa.String(32), nullable=False),
        sa.Column("grade", sa.String(8), nullable=True),
        sa.Column("grade_probabilities", sa.JSON, nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("cefr", sa.String(4), nullable=True),
        sa.Column("cefr_probabilities", sa.JSON, nullable=True),
        sa.Column("ielts_band", sa.Float, nullable=True),
        sa.Column("needs_review", sa.Boolean, nullable=False),
        sa.Column("grade_model_version", sa.String(32), nullable=False, server_default=""),
        sa.Column("cefr_model_version", sa.String(32), nullable=False, server_default=""),
        sa.Column("ielts_band_model_version", sa.String(32), nullable=False, server_default=""),
        sa.Column("feature_hash", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("scored_at", TZ, nullable=False),
        sa.UniqueConstraint(
            "essay_id",
            "grade_model_version",
            "cefr_model_version",
            "ielts_band_model_version",
            name="uq_essay_grade_predictions",
        ),
    )
    op.create_table(
        "model_promotions",
        sa.Column("promotion_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("previous_version", sa.String(32), nullable=True),
        sa.Column("decided_at", TZ, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("report_uri", sa.Text, nullable=True),
    )
    op.create_table(
        "quarantine",
        sa.Column("quarantine_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_table", sa.String(64), nullable=False),
        sa.Column("source_key", sa.String(512), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("payload", sa.JSON, nullable=True),
        sa.Column("detected_at", TZ, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("source_table", "source_key", "reason", name="uq_quarantine"),
    )
    op.create_index("ix_essays_updated_at", "essays", ["updated_at"])
    op.create_index("ix_skill_assessments_essay", "skill_assessments", ["essay_id"])


def downgrade() -> None:
    for table in (
        "quarantine",
        "model_promotions",
        "essay_grade_predictions",
        "skill_assessments",
        "cj_comparison_pairs",
        "cj_processed_essays",
        "skill_ratings",
        "ielts_scores",
        "teacher_grades",
        "prompts",
        "essays",
    ):
        op.drop_table(table)
