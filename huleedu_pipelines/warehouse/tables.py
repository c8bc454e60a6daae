"""Warehouse tables as SQLAlchemy Core metadata (documented in docs/architecture.md).

Input tables mirror the platform's services and deliberately carry no CHECK or foreign-key
constraints: they hold whatever the services wrote, and the ingest assets decide what is
valid (bad rows go to `quarantine`). Only what a column's type cannot hold is refused at
load time. Migrations in `warehouse/migrations` create exactly these tables.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from huleedu_pipelines.domain.second_ratings import MAX_SECOND_RATING_CHARS
from huleedu_pipelines.domain.subgroups import MAX_ATTRIBUTE_NAME_CHARS, MAX_ATTRIBUTE_VALUE_CHARS

metadata = sa.MetaData()


class UtcDateTime(sa.types.TypeDecorator):
    """A timezone-aware UTC timestamp on every dialect.

    SQLite stores timestamps without a zone and returns naive datetimes; PostgreSQL returns them
    in the session's zone. Both come back here as UTC-aware, and naive input is refused so a
    local time can never be written by mistake.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"timestamp {value!r} has no timezone; pass an aware UTC datetime")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


TZ = UtcDateTime()

essays = sa.Table(
    "essays",
    metadata,
    sa.Column("essay_id", sa.String(128), primary_key=True),
    sa.Column("student_id", sa.String(128), nullable=True),
    sa.Column("prompt_id", sa.String(128), nullable=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("language", sa.String(16), nullable=True),
    sa.Column("submitted_at", TZ, nullable=True),
    sa.Column("updated_at", TZ, nullable=True),
)

prompts = sa.Table(
    "prompts",
    metadata,
    sa.Column("prompt_id", sa.String(128), primary_key=True),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("text", sa.Text, nullable=False),
)
"""Prompt texts, so features can measure an essay's relevance to its prompt."""

teacher_grades = sa.Table(
    "teacher_grades",
    metadata,
    sa.Column("essay_id", sa.String(128), nullable=False),
    sa.Column("grade", sa.String(8), nullable=True),
    sa.Column("teacher_id", sa.String(128), nullable=False),
    sa.Column("graded_at", TZ, nullable=True),
    sa.PrimaryKeyConstraint("essay_id", "teacher_id", name="pk_teacher_grades"),
)

ielts_scores = sa.Table(
    "ielts_scores",
    metadata,
    sa.Column("essay_id", sa.String(128), primary_key=True),
    sa.Column("band", sa.Float, nullable=True),
    sa.Column("scored_at", TZ, nullable=True),
)

skill_ratings = sa.Table(
    "skill_ratings",
    metadata,
    sa.Column("essay_id", sa.String(128), nullable=False),
    sa.Column("skill", sa.String(64), nullable=False),
    sa.Column("rating", sa.Float, nullable=True),
    sa.Column("rater_id", sa.String(128), nullable=False),
    sa.Column("rated_at", TZ, nullable=True),
    sa.PrimaryKeyConstraint("essay_id", "skill", "rater_id", name="pk_skill_ratings"),
)

cj_processed_essays = sa.Table(
    "cj_processed_essays",
    metadata,
    sa.Column("batch_id", sa.String(128), nullable=False),
    sa.Column("essay_id", sa.String(128), nullable=False),
    sa.Column("current_bt_score", sa.Float, nullable=True),
    sa.Column("bt_se", sa.Float, nullable=True),
    sa.Column("rank", sa.Integer, nullable=True),
    sa.PrimaryKeyConstraint("batch_id", "essay_id", name="pk_cj_processed_essays"),
)

cj_comparison_pairs = sa.Table(
    "cj_comparison_pairs",
    metadata,
    sa.Column("comparison_id", sa.String(128), primary_key=True),
    sa.Column("batch_id", sa.String(128), nullable=False),
    sa.Column("essay_a_id", sa.String(128), nullable=False),
    sa.Column("essay_b_id", sa.String(128), nullable=False),
    sa.Column("winner_essay_id", sa.String(128), nullable=True),
    sa.Column("created_at", TZ, nullable=True),
)

essay_attributes = sa.Table(
    "essay_attributes",
    metadata,
    sa.Column("essay_id", sa.String(128), nullable=False),
    sa.Column("name", sa.String(MAX_ATTRIBUTE_NAME_CHARS), nullable=False),
    sa.Column("value", sa.String(MAX_ATTRIBUTE_VALUE_CHARS), nullable=False),
    sa.PrimaryKeyConstraint("essay_id", "name", name="pk_essay_attributes"),
)
"""Optional subgroups of an essay (e.g. `gender`, `school`) for fairness analysis, one value
per essay and name; `import-csv` fills it from `group_<name>` columns."""

second_ratings = sa.Table(
    "second_ratings",
    metadata,
    sa.Column("essay_id", sa.String(128), nullable=False),
    sa.Column("label", sa.String(64), nullable=False),
    sa.Column("value", sa.String(MAX_SECOND_RATING_CHARS), nullable=False),
    sa.Column("rated_at", TZ, nullable=True),
    sa.PrimaryKeyConstraint("essay_id", "label", name="pk_second_ratings"),
)
"""An independent second human rating of an essay's `grade`, `band` or a skill, in that
label's notation (`domain.second_ratings`), for human–human agreement in validation reports.
Kept out of the label tables so it never enters a training label; `import-csv` fills it from
`<label>_rater2` columns."""

skill_assessments = sa.Table(
    "skill_assessments",
    metadata,
    sa.Column("student_id", sa.String(128), nullable=True, doc="the essay's student, when known"),
    sa.Column("essay_id", sa.String(128), nullable=False, doc="the scored essay"),
    sa.Column("skill", sa.String(64), nullable=False, doc="skill name (one of the 7 skill models)"),
    sa.Column("score", sa.Float, nullable=False, doc="P(high skill) from the skill model"),
    sa.Column(
        "confidence",
        sa.Float,
        nullable=False,
        doc="distance of the score from 0.5, rescaled to 0..1",
    ),
    sa.Column(
        "top_features",
        sa.JSON(none_as_null=True),
        nullable=True,
        doc="the five largest feature contributions (JSON), when explained",
    ),
    sa.Column(
        "model_name",
        sa.String(128),
        nullable=False,
        doc="registered model that scored the row",
    ),
    sa.Column("model_version", sa.String(32), nullable=False, doc="its registry version"),
    sa.Column(
        "model_alias",
        sa.String(32),
        nullable=False,
        doc="'champion' or 'challenger' (shadow row) when scored",
    ),
    sa.Column(
        "feature_hash",
        sa.String(64),
        nullable=False,
        doc="hash of the features the row was scored from",
    ),
    sa.Column("run_id", sa.String(64), nullable=True, doc="Dagster run that wrote the row"),
    sa.Column("scored_at", TZ, nullable=False, doc="when the row was written (UTC)"),
    sa.UniqueConstraint(
        "essay_id", "skill", "model_name", "model_version", name="uq_skill_assessments"
    ),
)

essay_grade_predictions = sa.Table(
    "essay_grade_predictions",
    metadata,
    sa.Column("essay_id", sa.String(128), nullable=False, doc="the scored essay"),
    sa.Column(
        "model_alias",
        sa.String(32),
        nullable=False,
        doc="'champion' or 'challenger' (shadow row) when scored",
    ),
    sa.Column("grade", sa.String(8), nullable=True, doc="Swedish grade F..A from the grade model"),
    sa.Column(
        "grade_probabilities",
        sa.JSON(none_as_null=True),
        nullable=True,
        doc="probability of each of the 8 grades (JSON)",
    ),
    sa.Column(
        "confidence",
        sa.Float,
        nullable=True,
        doc="1 - normalised entropy of the grade probabilities (1 sure, 0 uniform)",
    ),
    sa.Column(
        "cefr",
        sa.String(4),
        nullable=True,
        doc="CEFR level A1..C2 from the CEFR classifier",
    ),
    sa.Column(
        "cefr_probabilities",
        sa.JSON(none_as_null=True),
        nullable=True,
        doc="probability of each CEFR level (JSON)",
    ),
    sa.Column(
        "ielts_band",
        sa.Float,
        nullable=True,
        doc="IELTS band 0..9 in half bands from the band regressor",
    ),
    sa.Column(
        "needs_review",
        sa.Boolean,
        nullable=False,
        doc="true when a teacher should look at the essay",
    ),
    sa.Column(
        "review_reasons",
        sa.Text,
        nullable=True,
        doc="why needs_review is set ('; '-separated)",
    ),
    sa.Column(
        "grade_model_version",
        sa.String(32),
        nullable=False,
        server_default="",
        doc="grade model version ('' when none)",
    ),
    sa.Column(
        "cefr_model_version",
        sa.String(32),
        nullable=False,
        server_default="",
        doc="CEFR model version ('' when none)",
    ),
    sa.Column(
        "ielts_band_model_version",
        sa.String(32),
        nullable=False,
        server_default="",
        doc="IELTS band model version ('' when none)",
    ),
    sa.Column(
        "feature_hash",
        sa.String(64),
        nullable=False,
        doc="hash of the features the row was scored from",
    ),
    sa.Column("run_id", sa.String(64), nullable=True, doc="Dagster run that wrote the row"),
    sa.Column("scored_at", TZ, nullable=False, doc="when the row was written (UTC)"),
    sa.UniqueConstraint(
        "essay_id",
        "grade_model_version",
        "cefr_model_version",
        "ielts_band_model_version",
        name="uq_essay_grade_predictions",
    ),
)
"""Model versions are '' (not NULL) when a model is not available, so the unique key holds.
`review_reasons` says why `needs_review` is set ("; "-separated: low confidence, models that
disagree by two or more CEFR levels, no grade model), NULL when it is not."""

model_promotions = sa.Table(
    "model_promotions",
    metadata,
    sa.Column("promotion_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("previous_version", sa.String(32), nullable=True),
    sa.Column("decided_at", TZ, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("report_uri", sa.Text, nullable=True),
)

serving_models = sa.Table(
    "serving_models",
    metadata,
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("alias", sa.String(32), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("since", TZ, nullable=False),
    sa.PrimaryKeyConstraint("model_name", "alias", name="pk_serving_models"),
)
"""Which version each alias points at now, as the product decided it: changed only in the same
transaction as its `model_promotions` row. The `current_*` views read it."""

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("quarantine_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_table", sa.String(64), nullable=False),
    sa.Column("source_key", sa.String(512), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.JSON, nullable=True),
    sa.Column("detected_at", TZ, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.UniqueConstraint("source_table", "source_key", "reason", name="uq_quarantine"),
)
"""Bad input, never silently dropped. One row per (table, key, reason): re-running is a no-op."""

monitoring_measurements = sa.Table(
    "monitoring_measurements",
    metadata,
    sa.Column("measurement_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("partition_date", sa.Date, nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("shards", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("measured_at", TZ, nullable=False),
    sa.Column("metric", sa.String(64), nullable=False),
    sa.Column("subject", sa.String(256), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.UniqueConstraint("run_id", "metric", "subject", name="uq_monitoring_measurements"),
    sa.Index("ix_monitoring_measurements_partition", "partition_date", "shard"),
)
"""History of `prediction_monitoring`: one row per measurement per run of a (day, shard)
partition. A rerun of a partition adds its rows beside the earlier run's (never overwrites);
a step retried within one run replaces that run's rows. `shards` is the shard count the run
used, since a shard's essays depend on it."""

INPUT_TABLES = (
    essays,
    prompts,
    teacher_grades,
    ielts_scores,
    skill_ratings,
    cj_processed_essays,
    cj_comparison_pairs,
    essay_attributes,
    second_ratings,
)

sa.Index("ix_essays_updated_at", essays.c.updated_at)
# The night's selection (`warehouse.nightly_selection`) finds its candidates through these.
sa.Index("ix_essays_submitted_at", essays.c.submitted_at)
sa.Index("ix_cj_comparison_pairs_created_at", cj_comparison_pairs.c.created_at)
sa.Index("ix_cj_comparison_pairs_batch_id", cj_comparison_pairs.c.batch_id)
sa.Index("ix_cj_comparison_pairs_essay_a_id", cj_comparison_pairs.c.essay_a_id)
sa.Index("ix_cj_comparison_pairs_essay_b_id", cj_comparison_pairs.c.essay_b_id)
# "Which essays lack a row from this champion" reads these alone (index-only anti-joins).
sa.Index(
    "ix_skill_assessments_model",
    skill_assessments.c.model_name,
    skill_assessments.c.model_version,
    skill_assessments.c.skill,
    skill_assessments.c.essay_id,
)
sa.Index(
    "ix_essay_grade_predictions_versions",
    essay_grade_predictions.c.grade_model_version,
    essay_grade_predictions.c.cefr_model_version,
    essay_grade_predictions.c.ielts_band_model_version,
    essay_grade_predictions.c.essay_id,
)

TABLES_BY_NAME: dict[str, sa.Table] = dict(metadata.tables)
