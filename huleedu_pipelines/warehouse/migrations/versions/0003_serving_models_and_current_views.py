"""serving_models (what each alias points at, changed with its audit row) and the read contract:
views current_skill_assessments and current_essay_grade_predictions, one row per essay (and
skill) from the versions that are champion now. Existing homes get serving_models from the
latest model_promotions row per model, so their readers see the champions they had.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

CURRENT_SKILL_ASSESSMENTS = """
CREATE VIEW current_skill_assessments AS
SELECT s.student_id, s.essay_id, s.skill, s.score, s.confidence, s.top_features,
       s.model_name, s.model_version, m.alias AS model_alias, s.feature_hash, s.run_id,
       s.scored_at
FROM skill_assessments s
JOIN serving_models m
  ON m.model_name = s.model_name AND m.version = s.model_version AND m.alias = 'champion'
"""


def _champion(model_name: str) -> str:
    return (
        "COALESCE((SELECT m.version FROM serving_models m WHERE m.alias = 'champion' "
        f"AND m.model_name = '{model_name}'), '')"
    )


CURRENT_ESSAY_GRADE_PREDICTIONS = f"""
CREATE VIEW current_essay_grade_predictions AS
SELECT p.essay_id, 'champion' AS model_alias, p.grade, p.grade_probabilities, p.confidence,
       p.cefr, p.cefr_probabilities, p.ielts_band, p.needs_review, p.grade_model_version,
       p.cefr_model_version, p.ielts_band_model_version, p.feature_hash, p.run_id, p.scored_at
FROM essay_grade_predictions p
WHERE p.grade_model_version = {_champion("huleedu-grade-sv")}
  AND p.cefr_model_version = {_champion("huleedu-cefr")}
  AND p.ielts_band_model_version = {_champion("huleedu-ielts-band")}
"""


def upgrade() -> None:
    op.create_table(
        "serving_models",
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model_name", "alias", name="pk_serving_models"),
    )
    op.execute(
        """
        INSERT INTO serving_models (model_name, alias, version, since)
        SELECT p.model_name, p.alias, p.version, p.decided_at
        FROM model_promotions p
        WHERE p.promotion_id = (
            SELECT MAX(q.promotion_id) FROM model_promotions q
            WHERE q.model_name = p.model_name AND q.alias = p.alias
        )
        """
    )
    op.execute(CURRENT_SKILL_ASSESSMENTS)
    op.execute(CURRENT_ESSAY_GRADE_PREDICTIONS)


def downgrade() -> None:
    op.execute("DROP VIEW current_essay_grade_predictions")
    op.execute("DROP VIEW current_skill_assessments")
    op.drop_table("serving_models")
