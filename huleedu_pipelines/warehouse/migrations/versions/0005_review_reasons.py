"""essay_grade_predictions.review_reasons: why an essay needs review (low confidence, models
that disagree by two or more CEFR levels, no grade model), "; "-separated, NULL when it does
not. The view current_essay_grade_predictions lists its columns, so it is recreated with the
new one; rows scored before have no reasons.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _champion(model_name: str) -> str:
    return (
        "COALESCE((SELECT m.version FROM serving_models m WHERE m.alias = 'champion' "
        f"AND m.model_name = '{model_name}'), '')"
    )


def _current_essay_grade_predictions(review_reasons: bool) -> str:
    """The view as 0003 created it, with `review_reasons` after `needs_review` when asked."""
    reasons = " p.review_reasons," if review_reasons else ""
    return f"""
CREATE VIEW current_essay_grade_predictions AS
SELECT p.essay_id, 'champion' AS model_alias, p.grade, p.grade_probabilities, p.confidence,
       p.cefr, p.cefr_probabilities, p.ielts_band, p.needs_review,{reasons} p.grade_model_version,
       p.cefr_model_version, p.ielts_band_model_version, p.feature_hash, p.run_id, p.scored_at
FROM essay_grade_predictions p
WHERE p.grade_model_version = {_champion("huleedu-grade-sv")}
  AND p.cefr_model_version = {_champion("huleedu-cefr")}
  AND p.ielts_band_model_version = {_champion("huleedu-ielts-band")}
"""


def upgrade() -> None:
    op.add_column("essay_grade_predictions", sa.Column("review_reasons", sa.Text, nullable=True))
    op.execute("DROP VIEW current_essay_grade_predictions")
    op.execute(_current_essay_grade_predictions(review_reasons=True))


def downgrade() -> None:
    op.execute("DROP VIEW current_essay_grade_predictions")
    op.drop_column("essay_grade_predictions", "review_reasons")
    op.execute(_current_essay_grade_predictions(review_reasons=False))
